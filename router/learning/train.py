"""`sllm learn`: outcome table in, policy directory out.

1. Split the labelled rows by a hash of their id: most to fit, the rest held out.
2. Fit the difficulty model (query only) and, where the table has edge answers, the
   cascade model (query + answer + signals); both calibrated (`model`).
3. Export both to ONNX and load the directory exactly as the router will (`Policy.load`),
   checking that onnxruntime gives scikit-learn's probabilities.
4. Score every row with models fitted without its group (task), as traffic unlike the
   training rows would be scored (`grouped`).
5. Choose both thresholds jointly on the held-out rows, with the ONNX scores, meeting the
   target on the unseen groups too where that is possible (`thresholds`).
6. Optionally refuse the result when it does worse on those rows than a baseline policy.
7. Move the directory into place in one rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
import structlog
from tqdm import tqdm

from router.embedding.encoder import MAX_TOKENS, shared_encoder
from router.embedding.encoder import MODEL as EMBEDDING_MODEL
from router.learning import metrics, modes
from router.learning.grouped import Index, NoGroups, OutOfGroup, cross_fit, group_of
from router.learning.knn import KnnScorer
from router.learning.model import Inputs, LinearScorer, reads_words
from router.learning.onnx_export import to_onnx
from router.learning.thresholds import CONFIDENCE, Operating, Scored, Target, choose
from router.outcome_table import OutcomeRow
from router.query_shape import QUERY_SHAPE_NAMES, query_shape_rows
from router.scorer import MANIFEST, Policy
from router.signals import (
    DIFFICULTY_SIGNAL,
    EDGE_SIGNAL_NAMES,
    TEXT_SIGNAL_NAMES,
    signal_vector,
    unknown_signals,
)
from sllm.settings import RouterSettings

log = structlog.get_logger("router.learning")

FloatArray = npt.NDArray[np.float64]
HOLDOUT_SHARE = 0.25
# Fewer rows than this (per class) and a model would learn noise: refuse with a message.
MIN_ROWS_PER_CLASS = 10
# The ONNX graph must agree with scikit-learn this closely (float32 arithmetic).
ONNX_TOLERANCE = 1e-5
# What the difficulty model reads: the query's TF-IDF words, or its neighbours in a
# sentence embedding (`knn`; needs the packaged embedding model, and adds its forward
# pass, about 10 ms, to every routing decision).
Difficulty = Literal["tfidf", "embedding-knn"]
# Queries -> their sentence embeddings.
Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class LearningError(ValueError):
    """The table cannot give a policy (too few labelled rows, one class only, ...)."""


class WorsePolicy(LearningError):
    """The new policy does worse than the baseline on the same held-out rows."""


@dataclass(frozen=True)
class Labelled:
    """The labelled rows of a table as arrays."""

    rows: list[OutcomeRow]
    edge: FloatArray
    cloud: FloatArray
    acceptable: npt.NDArray[np.bool_]
    weights: FloatArray

    @classmethod
    def of(cls, rows: Sequence[OutcomeRow]) -> Labelled:
        kept = [row for row in rows if row.edge_score is not None]
        edge = np.array([row.edge_score for row in kept], dtype=np.float64)
        # Unknown cloud outcome: the cloud is taken as acceptable (the reference tier).
        cloud = np.array(
            [1.0 if row.cloud_score is None else row.cloud_score for row in kept], np.float64
        )
        return cls(
            rows=kept,
            edge=edge,
            cloud=cloud,
            acceptable=np.array([bool(row.edge_acceptable) for row in kept], dtype=np.bool_),
            weights=np.array([row.weight for row in kept], dtype=np.float64),
        )

    def subset(self, index: npt.NDArray[np.intp]) -> Labelled:
        return Labelled(
            rows=[self.rows[i] for i in index],
            edge=self.edge[index],
            cloud=self.cloud[index],
            acceptable=self.acceptable[index],
            weights=self.weights[index],
        )

    @property
    def answered(self) -> npt.NDArray[np.intp]:
        return np.flatnonzero([row.edge_answer is not None for row in self.rows])


def held_out(
    rows: Sequence[OutcomeRow], share: float, salt: str, *, by_group: bool = False
) -> npt.NDArray[np.bool_]:
    """A fixed split: a row's side depends only on its id (or, `by_group`, its task) and
    the salt. Different salts give independent splits, so `learn` can hold out a part of
    a table that `outcomes split` made."""
    cut = int(share * 10_000)
    return np.array(
        [
            int(
                hashlib.sha256(
                    f"{salt}:{group_of(row) if by_group else row.id}".encode()
                ).hexdigest()[:8],
                16,
            )
            % 10_000
            < cut
            for row in rows
        ],
        dtype=np.bool_,
    )


def cascade_signal_names(rows: Sequence[OutcomeRow], choice: str = "auto") -> tuple[str, ...]:
    """The cascade model's signals. "auto": answer-text signals, plus the edge's statistics
    when every answered row has them; "none", "text", "edge", or names separated by commas
    (for measuring what each signal adds)."""
    if choice == "auto":
        answered = [row for row in rows if row.edge_answer is not None]
        if answered and all(row.edge_signals is not None for row in answered):
            return TEXT_SIGNAL_NAMES + EDGE_SIGNAL_NAMES
        return TEXT_SIGNAL_NAMES
    named = {"none": (), "text": TEXT_SIGNAL_NAMES, "edge": EDGE_SIGNAL_NAMES}
    if choice in named:
        return named[choice]
    names = tuple(name.strip() for name in choice.split(",") if name.strip())
    unknown = unknown_signals(names)
    if unknown:
        raise LearningError(
            f"unknown signals {unknown}; known: {sorted(EDGE_SIGNAL_NAMES + TEXT_SIGNAL_NAMES)}"
        )
    return names


def cascade_inputs(
    rows: Sequence[OutcomeRow], names: Sequence[str], p_edge_ok: FloatArray | None = None
) -> Inputs:
    """`p_edge_ok`: the rows' pre-generation scores, for `DIFFICULTY_SIGNAL`."""
    before: Sequence[float | None] = [None] * len(rows) if p_edge_ok is None else list(p_edge_ok)
    return Inputs(
        text=[row.prompt for row in rows],
        answer=[row.edge_answer or "" for row in rows],
        signals=np.stack(
            [
                signal_vector(
                    names,
                    query=row.prompt,
                    answer=row.edge_answer or "",
                    edge=row.edge_signals,
                    p_edge_ok=p,
                )
                for row, p in zip(rows, before, strict=True)
            ]
        ).astype(np.float64),
    )


def policy_scores(policy: Policy, rows: Sequence[OutcomeRow]) -> tuple[FloatArray, FloatArray]:
    """The policy's p_edge_ok before and after the edge answered, for each row, as the
    router computes them (a policy without a cascade model takes the edge's confidence
    score after generation). Rows with nothing new after generation (no edge answer, or
    no cascade model and no edge statistics) keep their pre-generation score."""
    pre = policy.p_edge_ok_many([row.prompt for row in rows]).astype(np.float64)
    after = pre.copy()
    answered = [
        i
        for i, row in enumerate(rows)
        if row.edge_answer is not None and (policy.has_cascade or row.edge_signals is not None)
    ]
    if answered:
        after[answered] = policy.p_edge_ok_after_many(
            [rows[i].prompt for i in answered],
            [rows[i].edge_answer or "" for i in answered],
            [rows[i].edge_signals for i in answered],
            pre[answered].tolist(),
        )
    return pre, after


def objective(operating: Operating, target: Target) -> tuple[float, ...]:
    """Higher is better: meeting the target first, then what the target optimises."""
    if target.kind == "quality":
        return (operating.target_met, -operating.cloud_share, operating.quality)
    return (operating.target_met, operating.quality, -operating.cloud_share)


def _check_classes(labels: npt.NDArray[np.bool_], what: str, advice: str = "") -> None:
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if min(positives, negatives) < MIN_ROWS_PER_CLASS:
        raise LearningError(
            f"{what}: needs at least {MIN_ROWS_PER_CLASS} rows where the edge was acceptable "
            f"and {MIN_ROWS_PER_CLASS} where it was not; has {positives} and {negatives}"
            f"{advice}"
        )


def fit_difficulty(train: Labelled, embed: Embed | None) -> LinearScorer | KnnScorer:
    """A difficulty model (query -> p_edge_ok) of the rows: TF-IDF words, or with `embed`
    the nearest neighbours in a sentence embedding."""
    prompts = [row.prompt for row in train.rows]
    if embed is None:
        return LinearScorer(signal_names=QUERY_SHAPE_NAMES).fit(
            difficulty_inputs(prompts), train.acceptable, train.weights
        )
    return KnnScorer.fit(embed(prompts), train.acceptable, train.weights)


def difficulty_inputs(prompts: Sequence[str]) -> Inputs:
    """What the TF-IDF difficulty model reads: the words and the shape of each query."""
    shape = query_shape_rows(QUERY_SHAPE_NAMES, prompts).astype(np.float64)
    return Inputs(text=prompts, signals=shape)


def predict_difficulty(
    model: LinearScorer | KnnScorer, prompts: Sequence[str], embed: Embed | None
) -> FloatArray:
    if isinstance(model, KnnScorer):
        assert embed is not None
        return model.predict(embed(prompts))
    return model.predict(difficulty_inputs(prompts))


@dataclass(frozen=True)
class ModeModel:
    """The difficulty model of step-by-step answers (the mode model), and how choosing
    the mode with it did on held-out questions answered in both modes."""

    step_by_step: LinearScorer | KnnScorer
    # Step by step only where its p_edge_ok exceeds the direct one's by more than this.
    margin: float
    validation: dict[str, Any]


def fit_mode_model(
    direct: Labelled, step_rows: Sequence[OutcomeRow], share: float, embed: Embed | None
) -> tuple[ModeModel | None, list[str]]:
    """The mode model from the table's step-by-step rows, fitted and validated on
    questions split by their prompt (modes.py); None, with a note saying why, when the
    rows cannot give one."""
    if not step_rows:
        return None, []
    step = Labelled.of(step_rows)
    side_direct = modes.held_out_questions(direct.rows, share)
    side_step = modes.held_out_questions(step.rows, share)
    train_direct = direct.subset(np.flatnonzero(~side_direct))
    train_step = step.subset(np.flatnonzero(~side_step))
    try:
        _check_classes(
            train_step.acceptable,
            f"the training part of the {len(step.rows)} step-by-step rows",
        )
        _check_classes(train_direct.acceptable, "the training part of the direct rows")
    except LearningError as reason:
        return None, [f"no mode model ({reason}): the answer format decides the mode"]
    model = fit_difficulty(train_step, embed)
    margin = _mode_margin(train_direct, train_step, embed)
    pairs = modes.Pairs.of(
        [direct.rows[i] for i in np.flatnonzero(side_direct)],
        [step.rows[i] for i in np.flatnonzero(side_step)],
    )
    if not pairs.direct:
        validation: dict[str, Any] = {
            "unavailable": "no held-out question was answered in both modes"
        }
        return ModeModel(model, margin, validation), []
    # A direct model fitted on the same questions, so both modes' scores are out of sample.
    direct_model = fit_difficulty(train_direct, embed)
    p_direct = predict_difficulty(direct_model, [row.prompt for row in pairs.direct], embed)
    p_step = predict_difficulty(model, [row.prompt for row in pairs.step], embed)
    validation = modes.figures(
        pairs, p_direct, p_step, RouterSettings().step_by_step_formats, margin
    )
    every = validation["all"]
    notes = [
        f"reasoning mode on {validation['questions']} held-out questions answered both ways: "
        f"edge quality direct {every['direct']['quality']:.3f}, step by step "
        f"{every['step_by_step']['quality']:.3f}, the answer-format rule "
        f"{every['format_rule']['quality']:.3f}, learned {every['learned']['quality']:.3f} "
        f"(step by step for {every['learned']['step_by_step_share']:.0%}, margin "
        f"{margin:.2f}), oracle "
        f"{every['oracle']['quality']:.3f}"
    ]
    return ModeModel(model, margin, validation), notes


def _mode_margin(direct: Labelled, step: Labelled, embed: Embed | None) -> float:
    """The margin (modes.choose_margin) from out-of-fold scores of the training
    questions answered in both modes; 0 when the folds cannot all be fitted."""
    pairs = modes.Pairs.of(direct.rows, step.rows)
    if not pairs.direct:
        return 0.0
    fold_direct = modes.question_folds(direct.rows)
    fold_step = modes.question_folds(step.rows)
    fold_pairs = modes.question_folds(pairs.direct)
    p_direct = np.zeros(len(pairs.direct))
    p_step = np.zeros(len(pairs.direct))
    for fold in range(modes.MARGIN_FOLDS):
        inside = np.flatnonzero(fold_pairs == fold)
        if not len(inside):
            continue
        parts = (
            direct.subset(np.flatnonzero(fold_direct != fold)),
            step.subset(np.flatnonzero(fold_step != fold)),
        )
        if any(min(p.acceptable.sum(), (~p.acceptable).sum()) < 2 for p in parts):
            return 0.0
        direct_model, step_model = (fit_difficulty(part, embed) for part in parts)
        p_direct[inside] = predict_difficulty(
            direct_model, [pairs.direct[i].prompt for i in inside], embed
        )
        p_step[inside] = predict_difficulty(
            step_model, [pairs.step[i].prompt for i in inside], embed
        )
    return modes.choose_margin(p_direct, p_step, *pairs.scores())


@dataclass(frozen=True)
class Models:
    """The fitted difficulty model, and the cascade model where the rows allow one."""

    difficulty: LinearScorer | KnnScorer
    cascade: LinearScorer | None
    signal_names: tuple[str, ...]
    # Set when the difficulty model reads embeddings.
    embed: Embed | None = None

    @classmethod
    def fit(cls, train: Labelled, signals: str, embed: Embed | None = None) -> Models:
        """A k-NN difficulty model's score is one more cascade signal (`signals` "auto")."""
        difficulty = fit_difficulty(train, embed)
        answered = train.subset(train.answered)
        names = cascade_signal_names(answered.rows, signals)
        if isinstance(difficulty, KnnScorer):
            if signals == "auto":
                names = (*names, DIFFICULTY_SIGNAL)
        elif DIFFICULTY_SIGNAL in names:
            raise LearningError(
                f"the {DIFFICULTY_SIGNAL} signal needs --difficulty embedding-knn (it is "
                "the k-NN model's score, left-one-out on the training rows)"
            )
        cascade = None
        acceptable = int(answered.acceptable.sum())
        if min(acceptable, len(answered.rows) - acceptable) >= MIN_ROWS_PER_CLASS:
            # What the k-NN says of each training row without the row itself, as it will
            # say of a new query; its own label would otherwise leak into the signal.
            before = (
                difficulty.leave_one_out(train.answered)
                if isinstance(difficulty, KnnScorer) and DIFFICULTY_SIGNAL in names
                else None
            )
            cascade = LinearScorer(signal_names=names, uses_answer=True).fit(
                cascade_inputs(answered.rows, names, before),
                answered.acceptable,
                answered.weights,
            )
        return cls(difficulty, cascade, names, embed)

    def scores(self, rows: Sequence[OutcomeRow]) -> tuple[FloatArray, FloatArray | None]:
        """scikit-learn's p_edge_ok before and after the edge answered (None without a
        cascade model; rows without an answer keep their pre-generation score)."""
        pre = predict_difficulty(self.difficulty, [row.prompt for row in rows], self.embed)
        if self.cascade is None:
            return pre, None
        after = pre.copy()
        answered = [i for i, row in enumerate(rows) if row.edge_answer is not None]
        if answered:
            after[answered] = self.cascade.predict(
                cascade_inputs([rows[i] for i in answered], self.signal_names, pre[answered])
            )
        return pre, after

    def notes(self, answered: Labelled) -> list[str]:
        """What the models could not learn from, said in the policy and by `sllm learn`."""
        notes = []
        if isinstance(self.difficulty, LinearScorer) and not reads_words(
            self.difficulty.text_vectorizer
        ):
            notes.append(
                "the difficulty model reads no word of the queries (none occurs in "
                "two training queries): it gives every query the same p_edge_ok"
            )
        if self.cascade is None and len(answered.rows):
            acceptable = int(answered.acceptable.sum())
            notes.append(
                f"no cascade model: {acceptable} answered training rows where the edge was "
                f"acceptable and {len(answered.rows) - acceptable} where it was not; needs "
                f"{MIN_ROWS_PER_CLASS} of each"
            )
        if self.cascade is not None and not reads_words(self.cascade.answer_vectorizer):
            notes.append(
                "the cascade model reads no word of the edge's answers (none occurs "
                "in two of them): it reads the query and the signals"
            )
        return notes


def _out_of_group(data: Labelled, signals: str, embed: Embed | None) -> OutOfGroup:
    def fit_and_score(train: Index, test: Index) -> tuple[FloatArray, FloatArray | None]:
        part = data.subset(train)
        _check_classes(part.acceptable, "a fold of the groups")
        return Models.fit(part, signals, embed).scores([data.rows[i] for i in test])

    return cross_fit(data.rows, fit_and_score)


def _unseen_block(unseen: OutOfGroup, also: Scored, operating: Operating) -> dict[str, Any]:
    block: dict[str, Any] = {
        "groups": len(unseen.names),
        "folds": unseen.folds,
        "rows": len(also.pre),
        **operating.as_dict(),
        "pre_generation": metrics.figures(also.pre, also.edge, also.cloud).as_dict(),
        "random": metrics.random_figures(also.edge, also.cloud).as_dict(),
        "oracle": metrics.figures(
            metrics.oracle_score(also.edge, also.cloud), also.edge, also.cloud
        ).as_dict(),
    }
    if also.after is not None:
        block["cascade"] = metrics.figures(also.after, also.edge, also.cloud).as_dict()
    return block


def _write_model(model: onnx.ModelProto, path: Path) -> None:
    path.write_bytes(model.SerializeToString())


# A router that began loading the old policy just before the swap reads it to the end
# from the renamed directory (it holds the directory open): give it that long.
RETIRED_GRACE_S = 0.5


def _install(staging: Path, out: Path) -> None:
    """Replaces `out` by `staging` with renames, so a reader sees one policy or the other."""
    if out.exists():
        retired = out.with_name(f".{out.name}.retired-{os.getpid()}")
        os.replace(out, retired)
        os.replace(staging, out)
        time.sleep(RETIRED_GRACE_S)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, out)


def _figures(score: FloatArray, data: Labelled) -> dict[str, float]:
    return metrics.figures(score, data.edge, data.cloud).as_dict()


def _table_embedder(rows: Sequence[OutcomeRow]) -> Embed:
    """Embeds every distinct prompt of the table once; the folds look them up."""
    prompts = sorted({row.prompt for row in rows})
    vectors = dict(zip(prompts, shared_encoder().embed(prompts), strict=True))
    return lambda queries: np.stack([vectors[query] for query in queries])


def _difficulty_onnx(model: LinearScorer | KnnScorer) -> onnx.ModelProto:
    return model.to_onnx() if isinstance(model, KnnScorer) else to_onnx(model)


def _scorer_entry(difficulty: LinearScorer | KnnScorer) -> dict[str, Any]:
    if isinstance(difficulty, LinearScorer):
        return {
            "file": "scorer.onnx",
            "description": "TF-IDF of the query and its shape + calibrated logistic "
            f"regression (C={difficulty.regularisation:g})",
            "signals": list(difficulty.signal_names),
        }
    return {
        "file": "scorer.onnx",
        "description": f"acceptable share of the {difficulty.k} training queries nearest "
        "in the sentence embedding",
        "embedding": {
            "model": EMBEDDING_MODEL,
            "dimension": difficulty.dimension,
            "max_tokens": MAX_TOKENS,
        },
    }


def learn(
    rows: Sequence[OutcomeRow],
    *,
    target: Target,
    out: Path,
    data_sha256: str,
    holdout_share: float = HOLDOUT_SHARE,
    baseline: Policy | None = None,
    signals: str = "auto",
    confidence: float = CONFIDENCE,
    readme: str = "",
    progress: bool = False,
    unseen_groups: Literal["meet", "report"] = "meet",
    difficulty: Difficulty = "tfidf",
) -> Policy:
    """Trains, validates and writes a policy directory; returns it loaded. `readme` goes
    to README.md in the directory (how the policy was made). `unseen_groups`: "meet"
    chooses thresholds that meet the target on groups the models never saw too, where
    any can; "report" chooses them on the held-out rows alone and reports the rest.
    `difficulty`: what the difficulty model reads (`Difficulty`)."""
    # Step-by-step rows teach the mode model; the rest of the policy reads direct answers.
    rows, step_rows = modes.split_modes(rows)
    data = Labelled.of(rows)
    if not data.rows:
        raise LearningError("no row has the edge's outcome (edge_score): nothing to learn from")
    _check_classes(data.acceptable, "the table")
    side = held_out(data.rows, holdout_share, salt="learn")
    train, valid = data.subset(np.flatnonzero(~side)), data.subset(np.flatnonzero(side))
    _check_classes(
        train.acceptable,
        f"the training part ({len(train.rows)} of {len(data.rows)} labelled rows, by a hash "
        "of their id)",
        "; add rows of the scarcer class or lower --holdout-share",
    )
    if len(valid.rows) == 0:
        raise LearningError("no held-out rows: use a larger table or a larger holdout share")

    steps = tqdm(total=4, desc="sllm learn", unit="step", disable=not progress)
    steps.set_postfix_str("models")
    embed = None if difficulty == "tfidf" else _table_embedder([*data.rows, *step_rows])
    models = Models.fit(train, signals, embed)
    cascade, names = models.cascade, models.signal_names
    notes = models.notes(train.subset(train.answered))
    mode_model, mode_notes = fit_mode_model(data, step_rows, holdout_share, embed)
    notes += mode_notes
    steps.update()

    steps.set_postfix_str("unseen groups")
    unseen: OutOfGroup | None = None
    also: Scored | None = None
    try:
        unseen = _out_of_group(data, signals, embed)
    except (NoGroups, LearningError) as reason:
        unseen_block: dict[str, Any] = {"unavailable": str(reason)}
    else:
        also = Scored(
            unseen.pre,
            None if cascade is None else unseen.pre if unseen.after is None else unseen.after,
            data.edge,
            data.cloud,
            data.weights,
            groups=unseen.groups,
        )
    steps.update()

    steps.set_postfix_str("ONNX export")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the policy from a router run by another user
    try:
        created = datetime.now(UTC)
        _write_model(_difficulty_onnx(models.difficulty), staging / "scorer.onnx")
        if mode_model is not None:
            _write_model(_difficulty_onnx(mode_model.step_by_step), staging / modes.MODE_MODEL_FILE)
        if cascade is not None:
            _write_model(to_onnx(cascade), staging / "cascade.onnx")
        manifest: dict[str, Any] = {
            "format": 1,
            "version": f"{created:%Y%m%dT%H%M%SZ}-{data_sha256[:8]}",
            "created_at": created.isoformat(),
            # Placeholders until the thresholds are chosen with the exported models.
            "pre_generation_threshold": 0.0,
            "cascade_threshold": 0.0,
            "scorer": _scorer_entry(models.difficulty),
            "step_by_step": None
            if mode_model is None
            else {
                "file": modes.MODE_MODEL_FILE,
                "margin": mode_model.margin,
                "description": "p_edge_ok of a step-by-step answer: "
                + _scorer_entry(mode_model.step_by_step)["description"],
            },
            "cascade": None
            if cascade is None
            else {
                "file": "cascade.onnx",
                "signals": list(names),
                "description": "TF-IDF of query and edge answer + signals, calibrated "
                f"logistic regression (C={cascade.regularisation:g})",
            },
            "training_data_sha256": data_sha256,
            "target": str(target),
            "validation": {},
        }
        manifest_path = staging / MANIFEST
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        exported = Policy.load(staging)
        pre, after = policy_scores(exported, valid.rows)
        expected_pre, expected_after = models.scores(valid.rows)
        difference = float(np.max(np.abs(pre - expected_pre)))
        if expected_after is not None:
            difference = max(difference, float(np.max(np.abs(after - expected_after))))
        if mode_model is not None:
            prompts = [row.prompt for row in valid.rows]
            exported_step = exported.p_edge_ok_many(prompts, step_by_step=True)
            expected_step = predict_difficulty(mode_model.step_by_step, prompts, embed)
            difference = max(difference, float(np.max(np.abs(exported_step - expected_step))))
        if difference > ONNX_TOLERANCE:
            raise LearningError(f"the ONNX export differs from scikit-learn by {difference:.2g}")
        steps.update()

        steps.set_postfix_str("thresholds")
        operating, on_unseen = choose(
            Scored(
                pre, after if cascade is not None else None, valid.edge, valid.cloud, valid.weights
            ),
            target,
            also=also if unseen_groups == "meet" else None,
            confidence=confidence,
        )
        if also is not None and on_unseen is None:
            on_unseen = also.simulate(
                operating.pre_generation_threshold, operating.cascade_threshold, target
            )
        if unseen is not None and also is not None and on_unseen is not None:
            unseen_block = _unseen_block(unseen, also, on_unseen)
            if not on_unseen.target_met:
                notes.append(
                    f"on groups the models never saw the target {target} is not met: quality "
                    f"{on_unseen.quality:.3f} (always-cloud {on_unseen.cloud_quality:.3f}), "
                    f"cloud share {on_unseen.cloud_share:.3f}"
                )
        validation: dict[str, Any] = {
            "rows_train": len(train.rows),
            "rows_validation": len(valid.rows),
            "rows_validation_answered": len(valid.answered),
            "holdout_share": holdout_share,
            "confidence": confidence,
            "edge_quality": float(np.average(valid.edge, weights=valid.weights)),
            **operating.as_dict(),
            "onnx_max_abs_diff": difference,
            "pre_generation": _figures(pre, valid),
            "random": metrics.random_figures(valid.edge, valid.cloud).as_dict(),
            "oracle": _figures(metrics.oracle_score(valid.edge, valid.cloud), valid),
            "unseen_groups": {"thresholds": unseen_groups, **unseen_block},
            "groups": dict(sorted(Counter(group_of(row) for row in data.rows).items())),
            "reasoning_mode": {"unavailable": "the table has no step-by-step rows"}
            if not step_rows
            else mode_model.validation
            if mode_model is not None
            else {"unavailable": mode_notes[0]},
            "notes": notes,
        }
        if cascade is not None:
            validation["cascade"] = _figures(after, valid)
        if baseline is not None:
            base_pre, base_after = policy_scores(baseline, valid.rows)
            base, _ = choose(
                Scored(
                    base_pre,
                    base_after if baseline.has_cascade else None,
                    valid.edge,
                    valid.cloud,
                    valid.weights,
                ),
                target,
                confidence=confidence,
            )
            validation["baseline"] = {"version": baseline.version, **base.as_dict()}
            if objective(operating, target) < objective(base, target):
                raise WorsePolicy(
                    f"refused: on the same {len(valid.rows)} held-out rows the new policy "
                    f"reaches quality {operating.quality:.3f} with cloud share "
                    f"{operating.cloud_share:.3f}, the baseline {baseline.version} "
                    f"{base.quality:.3f} with {base.cloud_share:.3f} (target {target})"
                )
        manifest.update(
            pre_generation_threshold=operating.pre_generation_threshold,
            cascade_threshold=operating.cascade_threshold,
            validation=validation,
        )
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if readme:
            (staging / "README.md").write_text(readme, encoding="utf-8")
        steps.update()
        steps.close()
        _install(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info(
        "learn.policy_written",
        directory=str(out),
        version=manifest["version"],
        pre_generation_threshold=operating.pre_generation_threshold,
        cascade_threshold=operating.cascade_threshold,
        quality=operating.quality,
        cloud_share=operating.cloud_share,
        target_met=operating.target_met,
    )
    return Policy.load(out)
