"""Agreement of two edge answers as a confidence signal (`sllm bench signals --modes`).

A table from `sllm outcomes collect --reasoning both` holds, for each question, the edge's
direct answer and its step-by-step answer: two greedy answers by different routes, the
cheapest second sample this edge has (it decodes greedily). Does their agreeing (the same
final answer, matched as gold answers are) tell when the direct answer is right, beyond
the edge's own confidence? Measured within each task (the learner must rank answers of one
kind of question), and as one more signal of the cascade model (random split; task folds,
every row scored by models fitted without its task). A second answer costs a second edge
call: it must pay for that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router.learning import metrics, modes
from router.learning.grouped import Index, cross_fit
from router.learning.model import Inputs, LinearScorer
from router.learning.train import Labelled, cascade_inputs, cascade_signal_names, held_out
from router.outcome_table import OutcomeRow, read_table
from sllm.answers import answers_match, extract_answer

FloatArray = npt.NDArray[np.float64]
TEST_SHARE = 0.3


def _final(row: OutcomeRow) -> str | None:
    return extract_answer(row.edge_answer or "", row.answer_format or "FREE_TEXT")


def paired(rows: Sequence[OutcomeRow]) -> tuple[list[OutcomeRow], FloatArray]:
    """The direct rows with the edge's signals that have a step-by-step twin (the same
    prompt), and whether the two final answers agree (1.0) or not."""
    pairs = modes.Pairs.of(*modes.split_modes(rows))
    twins = [
        (direct, step)
        for direct, step in zip(pairs.direct, pairs.step, strict=True)
        if direct.edge_signals is not None
    ]
    agree = []
    for direct, step in twins:
        mine, other = _final(direct), _final(step)
        fmt = direct.answer_format or "FREE_TEXT"
        agree.append(
            float(mine is not None and other is not None and answers_match(mine, other, fmt))
        )
    return [direct for direct, _ in twins], np.array(agree, dtype=np.float64)


def _auroc(labels: npt.NDArray[np.bool_], score: FloatArray) -> float | None:
    return metrics.auroc(labels, score) if 0 < labels.sum() < len(labels) else None


def _inputs(
    data: Labelled, agree: FloatArray, names: tuple[str, ...], with_agreement: bool
) -> Inputs:
    inputs = cascade_inputs(data.rows, names)
    if not with_agreement:
        return inputs
    assert inputs.signals is not None
    return Inputs(inputs.text, inputs.answer, np.column_stack([inputs.signals, agree]))


def _cascade(
    data: Labelled,
    agree: FloatArray,
    names: tuple[str, ...],
    with_agreement: bool,
    train: Index,
    test: Index,
) -> FloatArray:
    fit, scored = data.subset(train), data.subset(test)
    model = LinearScorer(
        signal_names=(*names, "agreement") if with_agreement else names, uses_answer=True
    )
    model.fit(_inputs(fit, agree[train], names, with_agreement), fit.acceptable, fit.weights)
    return model.predict(_inputs(scored, agree[test], names, with_agreement))


def agreement_figures(path: Path) -> dict[str, Any]:
    direct, agree = paired(read_table(path))
    data = Labelled.of(direct)
    confidence = np.array([row.edge_signals.confidence_score for row in direct if row.edge_signals])
    tasks = np.array([row.task for row in direct])
    by_task: dict[str, Any] = {}
    for task in sorted(set(tasks.tolist())):
        inside = tasks == task
        labels = data.acceptable[inside]
        by_task[str(task)] = {
            "rows": int(inside.sum()),
            "right": int(labels.sum()),
            "agree": int(agree[inside].sum()),
            "auroc_agreement": _auroc(labels, agree[inside]),
            "auroc_confidence": _auroc(labels, confidence[inside]),
        }
    names = cascade_signal_names(data.rows)
    test = held_out(data.rows, TEST_SHARE, salt="split")
    train_index, test_index = np.flatnonzero(~test), np.flatnonzero(test)
    cascade: dict[str, Any] = {}
    for with_agreement in (False, True):

        def fit_and_score(
            train: Index, test: Index, on: bool = with_agreement
        ) -> tuple[FloatArray, None]:
            return _cascade(data, agree, names, on, train, test), None

        scored = data.subset(test_index)
        random_split = _cascade(data, agree, names, with_agreement, train_index, test_index)
        folds = cross_fit(data.rows, fit_and_score)
        cascade["with agreement" if with_agreement else "without agreement"] = {
            "random_split": metrics.figures(random_split, scored.edge, scored.cloud).as_dict(),
            "task_folds": metrics.figures(folds.pre, data.edge, data.cloud).as_dict(),
        }
    return {
        "questions": len(direct),
        "agree_share": float(agree.mean()) if len(agree) else 0.0,
        "all_rows": {
            "auroc_agreement": _auroc(data.acceptable, agree),
            "auroc_confidence": _auroc(data.acceptable, confidence),
        },
        "by_task": by_task,
        "cascade": cascade,
    }
