"""Validation on groups the models never saw.

A random split scores a model on rows of the same tasks (MMLU subjects, data sets) it
was fitted on, so it can learn which task is hard rather than which query, and look
better than it will on traffic that shifts. Here the rows are cut into folds of whole
groups (a row's task, else its source): each fold is scored by models fitted on the
other folds, so every row gets a score from models that never saw its group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import GroupKFold

from router.outcome_table import OutcomeRow

FloatArray = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]
MAX_FOLDS = 5


def group_of(row: OutcomeRow) -> str:
    return row.task or row.source


class NoGroups(ValueError):
    """The rows cannot be validated by group; the message says why."""


@dataclass(frozen=True)
class OutOfGroup:
    """Every row scored by models fitted without its group."""

    names: list[str]
    # A group index per row (into `names`).
    groups: Index
    folds: int
    pre: FloatArray
    # None when no fold had a cascade model.
    after: FloatArray | None


# Fits on the rows of the first index, scores the rows of the second: p_edge_ok before
# and after the edge answered (None: no cascade model could be fitted).
FitAndScore = Callable[[Index, Index], tuple[FloatArray, FloatArray | None]]


def cross_fit(rows: Sequence[OutcomeRow], fit_and_score: FitAndScore) -> OutOfGroup:
    """Scores from `MAX_FOLDS` (or as many as there are groups) group folds; raises
    NoGroups when the rows have one group only. `fit_and_score` may raise NoGroups too
    (a fold it cannot fit on)."""
    names, groups = np.unique([group_of(row) for row in rows], return_inverse=True)
    if len(names) < 2:
        only = str(names[0]) if len(names) else ""
        raise NoGroups(f"one group only ({only or 'no task or source'}): no group to hold out")
    folds = min(MAX_FOLDS, len(names))
    pre = np.zeros(len(rows))
    after = np.zeros(len(rows))
    with_cascade = False
    for train, test in GroupKFold(n_splits=folds).split(pre, groups=groups):
        pre[test], scored_after = fit_and_score(train, test)
        with_cascade |= scored_after is not None
        after[test] = pre[test] if scored_after is None else scored_after
    return OutOfGroup(
        names=[str(name) for name in names],
        groups=groups.astype(np.intp),
        folds=folds,
        pre=pre,
        after=after if with_cascade else None,
    )
