"""Routing quality figures, as RouteLLM defines them.

A router with a score s sends the queries with the lowest s to the cloud (the strong
model) first. Sweeping the share of cloud calls from 0 to 1 traces quality against cloud
share. APGR is the area under that curve between the edge-only and cloud-only qualities,
normalised so that random routing scores about 0.5 and can exceed 1 (a router may beat
always-cloud when the edge is right where the cloud is wrong); CPT(x) is the smallest
cloud share that recovers x of the quality gap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

FloatArray = npt.NDArray[np.float64]
RANDOM_DRAWS = 20


@dataclass(frozen=True)
class Curve:
    """Quality (mean score) at each cloud share, from all-edge to all-cloud."""

    cloud_share: FloatArray
    quality: FloatArray
    edge_quality: float
    cloud_quality: float


def routing_curve(score: FloatArray, edge: FloatArray, cloud: FloatArray) -> Curve:
    order = np.argsort(score, kind="stable")
    n = len(score)
    gained = np.concatenate([[0.0], np.cumsum((cloud - edge)[order])])
    return Curve(
        cloud_share=np.arange(n + 1) / n,
        quality=(edge.sum() + gained) / n,
        edge_quality=float(edge.mean()),
        cloud_quality=float(cloud.mean()),
    )


def apgr(curve: Curve) -> float:
    gap = curve.cloud_quality - curve.edge_quality
    if gap == 0:
        return float("nan")
    area = float(np.trapezoid(curve.quality, curve.cloud_share))
    return (area - curve.edge_quality) / gap


def cpt(curve: Curve, recovered: float) -> float:
    """The smallest cloud share whose quality recovers `recovered` of the gap."""
    goal = curve.edge_quality + recovered * (curve.cloud_quality - curve.edge_quality)
    reached = np.flatnonzero(curve.quality >= goal - 1e-12)
    return float(curve.cloud_share[reached[0]]) if len(reached) else 1.0


def auroc(labels: npt.NDArray[np.bool_], score: FloatArray) -> float:
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, score))


def saved_at(curve: Curve, share_of_cloud_quality: float) -> float:
    """The share of cloud calls saved, against always-cloud, while keeping quality at
    `share_of_cloud_quality` times the always-cloud quality."""
    goal = share_of_cloud_quality * curve.cloud_quality
    reached = np.flatnonzero(curve.quality >= goal - 1e-12)
    return 1.0 - float(curve.cloud_share[reached[0]]) if len(reached) else 0.0


@dataclass(frozen=True)
class RouterFigures:
    auroc: float
    apgr: float
    cpt50: float
    cpt80: float
    # Cloud calls saved at 95% of always-cloud quality.
    saved_at_95: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def figures(score: FloatArray, edge: FloatArray, cloud: FloatArray) -> RouterFigures:
    """AUROC of predicting the edge's correctness (score >= 0.5), and the routing figures."""
    curve = routing_curve(score, edge, cloud)
    return RouterFigures(
        auroc=auroc(edge >= 0.5, score),
        apgr=apgr(curve),
        cpt50=cpt(curve, 0.5),
        cpt80=cpt(curve, 0.8),
        saved_at_95=saved_at(curve, 0.95),
    )


def random_figures(edge: FloatArray, cloud: FloatArray, seed: int = 0) -> RouterFigures:
    """Random routing, averaged over a few draws so that the reference line is steady."""
    rng = np.random.default_rng(seed)
    draws = [figures(rng.random(len(edge)), edge, cloud) for _ in range(RANDOM_DRAWS)]
    return RouterFigures(
        *(float(np.mean([getattr(d, name) for d in draws])) for name in asdict(draws[0]))
    )


def oracle_score(edge: FloatArray, cloud: FloatArray) -> FloatArray:
    """Knows each outcome: the cloud first where it gains the most."""
    return edge - cloud
