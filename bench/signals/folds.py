"""The cross-validation folds of the offline signal studies (`sllm bench trees`, `knn`,
`prompt-reading`): five random folds, or five folds of whole tasks (`group_of`: an MMLU
subject, a data set), so that a scorer is judged on rows, or on tasks, it never saw."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import GroupKFold, KFold

from router.learning.grouped import group_of
from router.outcome_table import OutcomeRow

Index = npt.NDArray[np.intp]
Folds = Literal["random", "group"]
FOLDS = 5


def fold_splits(
    rows: Sequence[OutcomeRow], folds: Folds, seed: int
) -> Iterator[tuple[Index, Index]]:
    """(fit, scored) indices into `rows`, fold by fold; `seed` shuffles random folds (group
    folds, scikit-learn's GroupKFold, do not depend on it)."""
    index = np.arange(len(rows))
    if folds == "group":
        groups = np.unique([group_of(row) for row in rows], return_inverse=True)[1]
        yield from GroupKFold(n_splits=FOLDS).split(index, groups=groups)
    else:
        yield from KFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(index)
