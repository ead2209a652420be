"""`sllm bench knn`: variants of the embedding k-NN difficulty model, and its score as a
cascade signal, by cross-validation on one table only (a training table: never the
test rows).

Pre-generation variants (`VARIANTS`): the number of neighbours; uniform, cosine or
exp((cosine - 1) / t) weights; shrinkage toward the training base rate with the weight
of a number of neighbours; the neighbours' mean gain (edge - cloud) instead of their
acceptable share; and the logit of the share (left-one-out on the fitted rows) with the
query's five shape numbers in one logistic regression. With edge answers, the cascade
model as `sllm learn` fits it with and without the k-NN's score (`query_difficulty`).

`--folds random` (5 folds, once per seed) or `group` (5 folds of whole tasks: seed 0 is
the learner's `GroupKFold`, other seeds random partitions of the tasks). Figures: AUROC,
APGR and CPT(50%) of the pooled out-of-fold scores, averaged over seeds. The embeddings
are the router's (`shared_encoder`), cached by `bench.signals.run.embedded`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler

from bench.signals.folds import FOLDS, Folds, Index, fold_splits
from router.learning import metrics
from router.learning.grouped import group_of
from router.learning.knn import NEIGHBOURS
from router.learning.train import Labelled, Models, cascade_signal_names
from router.query_shape import QUERY_SHAPE_NAMES, query_shape_rows
from router.signals import difficulty_logit

FloatArray = npt.NDArray[np.float64]
Float32 = npt.NDArray[np.float32]
Weighting = Literal["uniform", "cosine", "kernel"]


@dataclass(frozen=True)
class Variant:
    """One k-NN difficulty model; the defaults are the learner's (`KnnScorer`)."""

    k: int = NEIGHBOURS
    weighting: Weighting = "uniform"
    # The kernel's temperature: weight exp((cosine - 1) / temperature).
    temperature: float = 0.1
    # Pseudo-neighbours at the training base rate, in units of a weight-1 neighbour.
    prior: float = 0.0
    # Rank by the neighbours' mean gain of the edge over the cloud, not "acceptable".
    gain: bool = False
    # The logit of the share and the query's shape in one logistic regression.
    with_shape: bool = False


VARIANTS: dict[str, Variant] = {
    "k50 (learner)": Variant(),
    "k25": Variant(k=25),
    "k100": Variant(k=100),
    "k200": Variant(k=200),
    "k400": Variant(k=400),
    "k50 cosine": Variant(weighting="cosine"),
    "k200 kernel t0.05": Variant(k=200, weighting="kernel", temperature=0.05),
    "k200 kernel t0.1": Variant(k=200, weighting="kernel", temperature=0.1),
    "k200 kernel t0.2": Variant(k=200, weighting="kernel", temperature=0.2),
    "k50 cosine prior10": Variant(weighting="cosine", prior=10.0),
    "k50 cosine prior25": Variant(weighting="cosine", prior=25.0),
    "k50 gain": Variant(gain=True),
    "k50 + shape": Variant(with_shape=True),
}
CASCADES = ("cascade", "cascade + query_difficulty")


@dataclass(frozen=True)
class Table:
    data: Labelled
    embedding: Float32
    shape: FloatArray

    @classmethod
    def of(cls, data: Labelled, embedding: Float32) -> Table:
        prompts = [row.prompt for row in data.rows]
        shape = query_shape_rows(QUERY_SHAPE_NAMES, prompts).astype(np.float64)
        return cls(data, embedding.astype(np.float32), shape)


def _share(
    table: Table, variant: Variant, train: Index, test: Index, *, leave_one_out: bool = False
) -> FloatArray:
    """The variant's neighbour score of the `test` rows from the `train` rows (with
    `leave_one_out`, `test` is `train` and a row is not its own neighbour)."""
    data = table.data
    label = (data.edge - data.cloud + 1.0) / 2.0 if variant.gain else data.acceptable * 1.0
    similarity = table.embedding[test] @ table.embedding[train].T
    if leave_one_out:
        np.fill_diagonal(similarity, -np.inf)
    k = min(variant.k, len(train) - (1 if leave_one_out else 0))
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    cosine = np.take_along_axis(similarity, top, 1).astype(np.float64)
    if variant.weighting == "cosine":
        weight = np.clip(cosine, 0.0, None)
    elif variant.weighting == "kernel":
        weight = np.exp((cosine - 1.0) / variant.temperature)
    else:
        weight = np.ones_like(cosine)
    weight = weight * data.weights[train][top]
    base = float(np.average(label[train], weights=data.weights[train]))
    labels = label[train][top]
    share: FloatArray = ((weight * labels).sum(1) + variant.prior * base) / (
        weight.sum(1) + variant.prior
    )
    return share


def _logits(share: FloatArray) -> FloatArray:
    return np.array([difficulty_logit(float(p)) for p in share])


def pre_generation_scores(table: Table, variant: Variant, train: Index, test: Index) -> FloatArray:
    share = _share(table, variant, train, test)
    if not variant.with_shape:
        return share
    fitted = np.column_stack(
        [_logits(_share(table, variant, train, train, leave_one_out=True)), table.shape[train]]
    )
    scaler = StandardScaler().fit(fitted)
    model = LogisticRegression(max_iter=5000)
    model.fit(scaler.transform(fitted), table.data.acceptable[train], table.data.weights[train])
    scored = np.column_stack([_logits(share), table.shape[test]])
    decision: FloatArray = model.decision_function(scaler.transform(scored))
    return decision


def cascade_scores(table: Table, name: str, train: Index, test: Index) -> FloatArray:
    """The cascade model as `sllm learn` fits it beside a k-NN difficulty model, with its
    score (`query_difficulty`, "auto" signals) or without (the same signals named)."""
    fit, scored = table.data.subset(train), table.data.subset(test)
    vectors = dict(zip([row.prompt for row in table.data.rows], table.embedding, strict=True))

    def embed(prompts: Sequence[str]) -> Float32:
        return np.stack([vectors[prompt] for prompt in prompts])

    signals = "auto" if name == CASCADES[1] else ",".join(cascade_signal_names(fit.rows))
    _, after = Models.fit(fit, signals, embed).scores(scored.rows)
    if after is None:
        raise ValueError("a fold's answered rows fit no cascade model (too few of a class)")
    return after


def _splits(table: Table, folds: Folds, seed: int) -> Iterator[tuple[Index, Index]]:
    index = np.arange(len(table.data.rows))
    if folds == "random":
        yield from fold_splits(table.data.rows, folds, seed)
        return
    names, groups = np.unique([group_of(row) for row in table.data.rows], return_inverse=True)
    if seed == 0:
        yield from GroupKFold(n_splits=min(FOLDS, len(names))).split(index, groups=groups)
        return
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of_group = np.empty(len(names), np.intp)
    fold_of_group[order] = np.arange(len(names)) % FOLDS
    fold = fold_of_group[groups]
    for i in range(min(FOLDS, len(names))):
        yield np.flatnonzero(fold != i), np.flatnonzero(fold == i)


Scores = Callable[[Index, Index], FloatArray]


def _figures(table: Table, scores: Scores, folds: Folds, seeds: Sequence[int]) -> dict[str, float]:
    found = []
    for seed in seeds:
        pooled = np.zeros(len(table.data.rows))
        for train, test in _splits(table, folds, seed):
            pooled[test] = scores(train, test)
        found.append(metrics.figures(pooled, table.data.edge, table.data.cloud))
    return {
        "auroc": float(np.mean([f.auroc for f in found])),
        "apgr": float(np.mean([f.apgr for f in found])),
        "cpt50": float(np.mean([f.cpt50 for f in found])),
        "rows": len(table.data.rows),
    }


def cross_validate(
    table: Table, folds: Folds, seeds: Sequence[int], names: Sequence[str] = tuple(VARIANTS)
) -> dict[str, dict[str, float]]:
    """Out-of-fold figures of each named variant and, when every row has an edge answer,
    of the cascade model without and with `query_difficulty`."""
    figures: dict[str, dict[str, float]] = {}
    for name in names:
        variant = VARIANTS[name]

        def pre(train: Index, test: Index, variant: Variant = variant) -> FloatArray:
            return pre_generation_scores(table, variant, train, test)

        figures[name] = _figures(table, pre, folds, seeds)
    if len(table.data.answered) == len(table.data.rows):
        for name in CASCADES:

            def after(train: Index, test: Index, name: str = name) -> FloatArray:
                return cascade_scores(table, name, train, test)

            figures[name] = _figures(table, after, folds, seeds)
    return figures
