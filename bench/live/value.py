"""Routing value: what each router gives on the test part, as quality against cloud calls,
cost and latency. The baselines and the offline routers route the questions whose both
answers phase 1 measured through the router (their latencies are those calls'); sllm's own
row is phase 2, routed live. Routers with a score send the lowest-scored share to the
cloud, the share that keeps 95% of always-cloud accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.live.traffic import Answered
from router.learning import metrics
from router.learning.train import policy_scores
from router.outcome_table import OutcomeRow
from router.scorer import Policy

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
GOAL = 0.95
CLOUD_ROUTES = ("CLOUD", "EDGE_THEN_CLOUD", "EDGE_FALLBACK")


@dataclass(frozen=True)
class RouterRow:
    router: str
    accuracy: float
    cloud_share: float
    cost_usd_per_1k: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class Outcomes:
    """Per test question: both scores, both calls' times, the cloud call's cost."""

    edge: FloatArray
    cloud: FloatArray
    edge_ms: FloatArray
    cloud_ms: FloatArray
    cost: FloatArray

    @classmethod
    def of(
        cls, rows: Sequence[OutcomeRow], edge: Sequence[Answered], cloud: Sequence[Answered]
    ) -> Outcomes:
        edge_ms = {a.question.id: a.total_ms for a in edge}
        cloud_ms = {a.question.id: a.total_ms for a in cloud}
        return cls(
            edge=np.array([row.edge_score or 0.0 for row in rows]),
            cloud=np.array([row.cloud_score or 0.0 for row in rows]),
            edge_ms=np.array([edge_ms[row.id] for row in rows]),
            cloud_ms=np.array([cloud_ms[row.id] for row in rows]),
            cost=np.array([row.cloud_cost_usd or 0.0 for row in rows]),
        )

    def routed(self, router: str, to_cloud: BoolArray, *, edge_first: bool) -> RouterRow:
        """`edge_first`: every question ran on the edge before the escalated went on."""
        ms = np.where(to_cloud, self.cloud_ms + (self.edge_ms if edge_first else 0.0), self.edge_ms)
        return RouterRow(
            router,
            float(np.where(to_cloud, self.cloud, self.edge).mean()),
            float(to_cloud.mean()),
            float(np.where(to_cloud, self.cost, 0.0).mean() * 1000),
            float(np.percentile(ms, 50)),
            float(np.percentile(ms, 95)),
        )


def lowest(score: FloatArray, outcomes: Outcomes) -> BoolArray:
    """The lowest-scored share of questions that reaches the goal, marked for the cloud."""
    curve = metrics.routing_curve(score, outcomes.edge, outcomes.cloud)
    share = 1.0 - metrics.saved_at(curve, GOAL)
    to_cloud = np.zeros(len(score), dtype=np.bool_)
    to_cloud[np.argsort(score, kind="stable")[: round(share * len(score))]] = True
    return to_cloud


def live_row(auto: Sequence[Answered], outcomes: Outcomes, rows: Sequence[OutcomeRow]) -> RouterRow:
    cost = dict(zip((row.id for row in rows), outcomes.cost, strict=True))
    to_cloud = np.array([a.route in CLOUD_ROUTES for a in auto])
    ms = np.array([a.total_ms for a in auto])
    return RouterRow(
        "sllm, live (cascade, early exit)",
        float(np.mean([a.score for a in auto])),
        float(to_cloud.mean()),
        float(
            np.mean(
                [cost[a.question.id] if c else 0.0 for a, c in zip(auto, to_cloud, strict=True)]
            )
            * 1000
        ),
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 95)),
    )


def table(
    rows: Sequence[OutcomeRow], outcomes: Outcomes, policy: Path | None, auto: Sequence[Answered]
) -> tuple[list[RouterRow], dict[str, FloatArray]]:
    """The rows of the table, and the scores whose curves the plot draws."""
    n = len(rows)
    scores = {"oracle": metrics.oracle_score(outcomes.edge, outcomes.cloud)}
    table = [
        outcomes.routed("always edge", np.zeros(n, np.bool_), edge_first=False),
        outcomes.routed("always cloud", np.ones(n, np.bool_), edge_first=False),
    ]
    if policy is not None:
        scores["pre-generation"], scores["cascade"] = policy_scores(Policy.load(policy), rows)
        table += [
            outcomes.routed(
                "pre-generation only (RouteLLM-style)",
                lowest(scores["pre-generation"], outcomes),
                edge_first=False,
            ),
            outcomes.routed(
                "cascade, offline", lowest(scores["cascade"], outcomes), edge_first=True
            ),
        ]
    if auto:
        table.append(live_row(auto, outcomes, rows))
    share = table[-1].cloud_share if len(table) > 2 else 0.5
    picked = np.random.default_rng(0).permutation(n) < round(share * n)
    table.append(outcomes.routed(f"random at {share:.0%} cloud", picked, edge_first=False))
    table.append(outcomes.routed("oracle", lowest(scores["oracle"], outcomes), edge_first=False))
    return table, scores


def print_table(table: Sequence[RouterRow]) -> None:
    print(f"routing value on the test part (goal: {GOAL:.0%} of always-cloud accuracy):")
    print(f"  {'router':<38}{'accuracy':>9}{'cloud':>7}{'$/1k q':>8}{'p50 ms':>8}{'p95 ms':>8}")
    for row in table:
        print(
            f"  {row.router:<38}{row.accuracy:>9.3f}{row.cloud_share:>7.2f}"
            f"{row.cost_usd_per_1k:>8.3f}{row.p50_ms:>8.0f}{row.p95_ms:>8.0f}"
        )


def as_json(table: Sequence[RouterRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in table]
