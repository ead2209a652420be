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


def _resamples(weights: FloatArray, replicates: int, seed: int) -> FloatArray:
    """Row 0: the held-out rows as they are; then bootstrap resamples of them, each as
    per-row multiplicities times the row weights."""
    n = len(weights)
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=replicates)
    return np.vstack([weights, counts * weights])


def choose(
    pre: FloatArray,
    after: FloatArray | None,
    edge: FloatArray,
    cloud: FloatArray,
    target: Target,
    weights: FloatArray | None = None,
    *,
    confidence: float = CONFIDENCE,
    replicates: int = REPLICATES,
    seed: int = 0,
) -> Operating:
    """The best pair for the target; when none meets it, the one that comes closest.

    A pair meets the target when it does on the held-out rows and on at least
    `confidence` of bootstrap resamples of them: a few hundred rows are a noisy sample,
    and a pair that only just meets the target on them often misses it on new traffic.
    Ties go to fewer edge attempts that end escalated (they cost the edge's time too).
    Without a cascade score (`after` None) only the pre-generation threshold is chosen and
    the cascade threshold is 0: the edge's answer is kept unless it collapses."""
    w = np.ones_like(edge) if weights is None else weights
    if after is None:
        after = np.ones_like(pre)
        after_candidates = np.zeros(1)
    else:
        after_candidates = _candidates(after)
    resampled = _resamples(w, replicates if confidence > 0 else 0, seed)
    totals = resampled.sum(1)[:, None]
    cloud_quality = (resampled @ cloud)[:, None] / totals
    best_key: tuple[float, ...] | None = None
    best: tuple[float, float] = (0.0, 0.0)
    for t1 in _candidates(pre):
        direct = pre < t1
        # rows x cascade thresholds: escalated after an edge attempt
        escalated = ~direct[:, None] & (after[:, None] < after_candidates[None, :])
        to_cloud = direct[:, None] | escalated
        # resamples x cascade thresholds
        quality = resampled @ np.where(to_cloud, cloud[:, None], edge[:, None]) / totals
        share = resampled @ to_cloud / totals
        if target.kind == "quality":
            holds = quality >= target.value * cloud_quality - 1e-9
        else:
            holds = share <= target.value + 1e-9
        met = holds[0] & (holds[1:].mean(0) >= confidence if len(holds) > 1 else True)
        point_quality, point_share = quality[0], share[0]
        escalations = w @ escalated / w.sum()
        if target.kind == "quality":
            # Met: the fewest cloud calls. Unmet: as close to the target as possible.
            keys = [met, np.where(met, -point_share, point_quality), point_quality, -escalations]
        else:
            keys = [met, np.where(met, point_quality, -point_share), -point_share, -escalations]
        # np.lexsort takes the primary key last
        index = int(np.lexsort(keys[::-1])[-1])
        key = tuple(float(k[index]) for k in keys)
        if best_key is None or key > best_key:
            best_key, best = key, (float(t1), float(after_candidates[index]))
    return simulate(pre, after, edge, cloud, w, best[0], best[1], target)
