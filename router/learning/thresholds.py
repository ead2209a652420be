"""Choosing the pre-generation and cascade thresholds together.

A query goes to the cloud at once when p_edge_ok (from the query) is below the
pre-generation threshold; otherwise the edge answers, and the answer is escalated when
p_edge_ok after the answer is below the cascade threshold. Every pair from a grid of
score quantiles is simulated on held-out rows, and the cheapest pair that meets the
target wins.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
GRID_POINTS = 101
# Share of bootstrap resamples of the held-out rows on which the target must hold too.
CONFIDENCE = 0.8
REPLICATES = 200


@dataclass(frozen=True)
class Target:
    """quality=Q: keep at least Q times the always-cloud quality with the fewest cloud
    calls; cloud_share=S: the best quality with at most a share S of queries reaching the
    cloud."""

    kind: Literal["quality", "cloud_share"]
    value: float

    @classmethod
    def parse(cls, text: str) -> Target:
        match = re.fullmatch(r"\s*(quality|cloud_share)\s*=\s*([0-9]*\.?[0-9]+)\s*", text)
        if match is None:
            raise ValueError(f"target {text!r}: write quality=0.95 or cloud_share=0.3")
        value = float(match.group(2))
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"target {text!r}: the value must be between 0 and 1")
        kind: Literal["quality", "cloud_share"] = (
            "quality" if match.group(1) == "quality" else "cloud_share"
        )
        return cls(kind, value)

    def __str__(self) -> str:
        return f"{self.kind}={self.value:g}"


@dataclass(frozen=True)
class Operating:
    """What a pair of thresholds does on a set of rows."""

    pre_generation_threshold: float
    cascade_threshold: float
    quality: float
    cloud_quality: float
    cloud_share: float
    direct_cloud_share: float
    escalation_share: float
    target_met: bool

    def as_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def _candidates(score: FloatArray) -> FloatArray:
    # 0 (never) and just above the maximum (always), plus quantiles in between.
    quantiles = np.quantile(score, np.linspace(0.0, 1.0, GRID_POINTS))
    return np.unique(np.concatenate([[0.0], quantiles, [np.nextafter(score.max(), 2.0)]]))


def simulate(
    pre: FloatArray,
    after: FloatArray,
    edge: FloatArray,
    cloud: FloatArray,
    weights: FloatArray,
    pre_threshold: float,
    cascade_threshold: float,
    target: Target,
) -> Operating:
    direct = pre < pre_threshold
    escalated = ~direct & (after < cascade_threshold)
    to_cloud = direct | escalated
    total = weights.sum()
    quality = float(np.sum(weights * np.where(to_cloud, cloud, edge)) / total)
    cloud_quality = float(np.sum(weights * cloud) / total)
    share = float(np.sum(weights * to_cloud) / total)
    return Operating(
        pre_generation_threshold=float(pre_threshold),
        cascade_threshold=float(cascade_threshold),
        quality=quality,
        cloud_quality=cloud_quality,
        cloud_share=share,
        direct_cloud_share=float(np.sum(weights * direct) / total),
        escalation_share=float(np.sum(weights * escalated) / total),
        target_met=_meets(target, quality, cloud_quality, share),
    )


def _meets(target: Target, quality: float, cloud_quality: float, share: float) -> bool:
    tolerance = 1e-9
    if target.kind == "quality":
        return quality >= target.value * cloud_quality - tolerance
    return share <= target.value + tolerance


def _resamples(
    weights: FloatArray, replicates: int, seed: int, groups: npt.NDArray[np.intp] | None
) -> FloatArray:
    """Row 0: the rows as they are; then bootstrap resamples of them, each as per-row
    multiplicities times the row weights. With `groups` (a group index per row), whole
    groups are resampled: rows of one group are not independent draws of new traffic."""
    if groups is None:
        n = len(weights)
        counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=replicates)
    else:
        g = int(groups.max()) + 1
        drawn = np.random.default_rng(seed).multinomial(g, np.full(g, 1.0 / g), size=replicates)
        counts = drawn[:, groups]
    return np.vstack([weights, counts * weights])


@dataclass(frozen=True)
class Scored:
    """Rows the thresholds are tried on: p_edge_ok before and after the edge answered
    (None: no cascade score), the outcomes, and the row weights."""

    pre: FloatArray
    after: FloatArray | None
    edge: FloatArray
    cloud: FloatArray
    weights: FloatArray | None = None
    # A group index per row: bootstrap by group (rows of groups the models never saw).
    groups: npt.NDArray[np.intp] | None = None

    @property
    def w(self) -> FloatArray:
        return np.ones_like(self.edge) if self.weights is None else self.weights

    def simulate(self, pre_threshold: float, cascade_threshold: float, target: Target) -> Operating:
        after = np.ones_like(self.pre) if self.after is None else self.after
        return simulate(
            self.pre, after, self.edge, self.cloud, self.w, pre_threshold, cascade_threshold, target
        )


@dataclass(frozen=True)
class _Trial:
    """One set of rows under one pre-generation threshold and every cascade threshold."""

    met: npt.NDArray[np.bool_]
    quality: FloatArray
    share: FloatArray
    escalations: FloatArray


class _Trials:
    def __init__(
        self, rows: Scored, target: Target, confidence: float, replicates: int, seed: int
    ) -> None:
        self.rows, self.target, self.confidence = rows, target, confidence
        self.after = np.ones_like(rows.pre) if rows.after is None else rows.after
        self.resampled = _resamples(rows.w, replicates if confidence > 0 else 0, seed, rows.groups)
        self.totals = self.resampled.sum(1)[:, None]
        self.cloud_quality = (self.resampled @ rows.cloud)[:, None] / self.totals

    def at(self, t1: float, after_candidates: FloatArray) -> _Trial:
        rows = self.rows
        direct = rows.pre < t1
        # rows x cascade thresholds: escalated after an edge attempt
        escalated = ~direct[:, None] & (self.after[:, None] < after_candidates[None, :])
        to_cloud = direct[:, None] | escalated
        # resamples x cascade thresholds
        quality = self.resampled @ np.where(to_cloud, rows.cloud[:, None], rows.edge[:, None])
        quality = quality / self.totals
        share = self.resampled @ to_cloud / self.totals
        if self.target.kind == "quality":
            holds = quality >= self.target.value * self.cloud_quality - 1e-9
        else:
            holds = share <= self.target.value + 1e-9
        met = holds[0] & (holds[1:].mean(0) >= self.confidence if len(holds) > 1 else True)
        w = rows.w
        return _Trial(met, quality[0], share[0], w @ escalated / w.sum())


def choose(
    rows: Scored,
    target: Target,
    *,
    also: Scored | None = None,
    confidence: float = CONFIDENCE,
    replicates: int = REPLICATES,
    seed: int = 0,
) -> tuple[Operating, Operating | None]:
    """The best pair for the target on `rows`; when none meets it, the one that comes
    closest. Returns what it does on `rows` and on `also`.

    A pair meets the target when it does on the rows and on at least `confidence` of
    bootstrap resamples of them: a few hundred rows are a noisy sample, and a pair that
    only just meets the target on them often misses it on new traffic. With `also` (rows
    of groups the models never saw, scored by models that did not see them), pairs that
    meet the target there too come first: the policy is then chosen for traffic unlike
    its training rows, and when no pair can do that, the report says so.
    Ties go to fewer edge attempts that end escalated (they cost the edge's time too).
    Without a cascade score (`after` None) only the pre-generation threshold is chosen and
    the cascade threshold is 0: the edge's answer is kept unless it collapses."""
    after_candidates = np.zeros(1) if rows.after is None else _candidates(rows.after)
    pre_candidates = rows.pre if also is None else np.concatenate([rows.pre, also.pre])
    trials = _Trials(rows, target, confidence, replicates, seed)
    others = None if also is None else _Trials(also, target, confidence, replicates, seed)
    best_key: tuple[float, ...] | None = None
    best: tuple[float, float] = (0.0, 0.0)
    for t1 in _candidates(pre_candidates):
        trial = trials.at(t1, after_candidates)
        met = trial.met
        also_met = met if others is None else met & others.at(t1, after_candidates).met
        quality, share = trial.quality, trial.share
        if target.kind == "quality":
            # Met: the fewest cloud calls. Unmet: as close to the target as possible.
            keys = [also_met, met, np.where(met, -share, quality), quality, -trial.escalations]
        else:
            keys = [also_met, met, np.where(met, quality, -share), -share, -trial.escalations]
        # np.lexsort takes the primary key last
        index = int(np.lexsort(keys[::-1])[-1])
        key = tuple(float(k[index]) for k in keys)
        if best_key is None or key > best_key:
            best_key, best = key, (float(t1), float(after_candidates[index]))
    return (
        rows.simulate(*best, target),
        None if also is None else also.simulate(*best, target),
    )
