"""The reasoning mode, learned: which questions the edge answers better step by step.

A table whose rows record the edge's mode (`reasoning_mode`: `sllm outcomes collect
--reasoning both`, or the router's log with mode exploration on) gives the edge's outcome
in each mode. The learner fits a difficulty model per mode, p_edge_ok(query | mode), and
the router picks the mode with the higher one that fits the time (router/policy.py).

Validated on questions held out by their prompt, so that no question is seen in one mode
and judged in the other: on held-out questions answered in both modes, the edge's quality
when every question is answered directly, every one step by step, by the answer-format
rule the router uses without a mode model, by the learned choice, and by the oracle
choice (the better mode of each question, known only afterwards).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router.outcome_table import OutcomeRow

FloatArray = npt.NDArray[np.float64]
# The mode model's file in a policy directory (policy.json's `step_by_step`).
MODE_MODEL_FILE = "scorer_step_by_step.onnx"


def split_modes(rows: Sequence[OutcomeRow]) -> tuple[list[OutcomeRow], list[OutcomeRow]]:
    """The rows answered directly (or in a mode not recorded), and those step by step."""
    step = [row for row in rows if row.reasoning_mode == "STEP_BY_STEP"]
    if not step:
        return list(rows), []
    return [row for row in rows if row.reasoning_mode != "STEP_BY_STEP"], step


def _buckets(rows: Sequence[OutcomeRow], salt: str, count: int) -> npt.NDArray[np.intp]:
    """Each row's bucket in [0, count), fixed by its question (the prompt) and the salt, so
    both modes of a question share one."""
    return np.array(
        [
            int(hashlib.sha256(f"{salt}:{row.prompt}".encode()).hexdigest()[:8], 16) % count
            for row in rows
        ],
        dtype=np.intp,
    )


def held_out_questions(rows: Sequence[OutcomeRow], share: float) -> npt.NDArray[np.bool_]:
    """A fixed split by the question, so both modes of a question fall on the same side."""
    return _buckets(rows, "mode", 10_000) < int(share * 10_000)


@dataclass(frozen=True)
class Pairs:
    """Questions answered in both modes: each mode's row, side by side."""

    direct: list[OutcomeRow]
    step: list[OutcomeRow]

    @classmethod
    def of(cls, direct: Sequence[OutcomeRow], step: Sequence[OutcomeRow]) -> Pairs:
        stepwise = {row.prompt: row for row in step if row.edge_score is not None}
        kept = [row for row in direct if row.edge_score is not None and row.prompt in stepwise]
        return cls(kept, [stepwise[row.prompt] for row in kept])

    def scores(self) -> tuple[FloatArray, FloatArray]:
        return (
            np.array([row.edge_score for row in self.direct], dtype=np.float64),
            np.array([row.edge_score for row in self.step], dtype=np.float64),
        )


# Out-of-fold scores of the training questions choose the margin: this many folds.
MARGIN_FOLDS = 5


def question_folds(rows: Sequence[OutcomeRow], folds: int = MARGIN_FOLDS) -> npt.NDArray[np.intp]:
    """Each row's fold, by its question, so both modes of a question share one."""
    return _buckets(rows, "fold", folds)


def choose_margin(
    p_direct: FloatArray, p_step: FloatArray, direct: FloatArray, step: FloatArray
) -> float:
    """How much more p_edge_ok step by step must expect than direct before the edge
    reasons: the margin with the best edge quality on these questions (out-of-fold
    scores), the largest of equals, since a step-by-step answer costs more tokens. 1.0:
    never step by step."""
    gain = p_step - p_direct
    best, best_quality = 1.0, float(direct.mean()) if len(direct) else 0.0
    # Just below each question's gain: that question and those above it go step by step.
    for margin in sorted({round(float(g), 6) - 1e-6 for g in gain} | {0.0}, reverse=True):
        quality = float(np.where(gain > margin, step, direct).mean())
        if quality > best_quality + 1e-12:
            best, best_quality = max(margin, -1.0), quality
    return float(best)


def _tokens(rows: Sequence[OutcomeRow]) -> FloatArray:
    return np.array([row.edge_completion_tokens or 0 for row in rows], dtype=np.float64)


def figures(
    pairs: Pairs,
    p_direct: FloatArray,
    p_step: FloatArray,
    format_rule: Sequence[str],
    margin: float,
) -> dict[str, Any]:
    """The edge's quality (mean score) and mean completion tokens under each way of
    choosing the mode, on the same held-out questions; per task too."""
    direct, step = pairs.scores()
    choices = {
        "direct": np.zeros(len(direct), dtype=np.bool_),
        "step_by_step": np.ones(len(direct), dtype=np.bool_),
        "format_rule": np.array([row.answer_format in format_rule for row in pairs.direct]),
        "learned": p_step > p_direct + margin,
        "oracle": step > direct,
    }
    tokens_direct, tokens_step = _tokens(pairs.direct), _tokens(pairs.step)

    def summary(mask: npt.NDArray[np.bool_]) -> dict[str, dict[str, float]]:
        return {
            name: {
                "quality": float(np.where(chosen, step, direct)[mask].mean()),
                "step_by_step_share": float(chosen[mask].mean()),
                "mean_tokens": float(np.where(chosen, tokens_step, tokens_direct)[mask].mean()),
            }
            for name, chosen in choices.items()
        }

    tasks = np.array([row.task for row in pairs.direct])
    return {
        "questions": len(direct),
        "margin": margin,
        "all": summary(np.ones(len(direct), dtype=np.bool_)),
        "by_task": {
            str(task): {"questions": int((tasks == task).sum()), **summary(tasks == task)}
            for task in sorted(set(tasks.tolist()))
        },
    }
