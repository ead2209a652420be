"""routing.png: quality against cloud calls, each router a curve (its threshold swept) or
a point (as it ran)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.live.value import GOAL, FloatArray, Outcomes, RouterRow
from router.learning import metrics

# A router's swept curve and its point share a colour (the point's name starts like it).
CURVE_COLOURS = {"oracle": "tab:blue", "pre-generation": "tab:orange", "cascade": "tab:green"}
POINT_COLOURS = ("black", "tab:red", "tab:purple", "tab:grey", "tab:brown")


def _colour(router: str, others: list[str]) -> str:
    for prefix, colour in CURVE_COLOURS.items():
        if router.startswith(prefix):
            return colour
    return others.pop(0)


def plot(
    path: Path, table: Sequence[RouterRow], scores: dict[str, FloatArray], outcomes: Outcomes
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5.5))
    for label, score in scores.items():
        curve = metrics.routing_curve(score, outcomes.edge, outcomes.cloud)
        axes.plot(
            curve.cloud_share * 100,
            curve.quality * 100,
            label=f"{label} (swept)",
            color=CURVE_COLOURS[label],
        )
    edge_q, cloud_q = float(outcomes.edge.mean()), float(outcomes.cloud.mean())
    axes.plot(
        [0, 100],
        [edge_q * 100, cloud_q * 100],
        linestyle=":",
        color="grey",
        label="random (expected)",
    )
    axes.axhline(
        GOAL * cloud_q * 100,
        linestyle="--",
        color="tab:red",
        linewidth=0.8,
        label=f"{GOAL:.0%} of always-cloud accuracy",
    )
    others = list(POINT_COLOURS)
    for row, marker in zip(table, "osD^vPX*", strict=False):
        axes.scatter(
            [row.cloud_share * 100],
            [row.accuracy * 100],
            marker=marker,
            s=60,
            zorder=5,
            color=_colour(row.router, others),
            label=f"{row.router}: p50 {row.p50_ms:.0f} ms",
        )
    axes.set(
        xlabel="cloud calls (% of queries)",
        ylabel="accuracy (% of questions right)",
        title=f"Routing value, {len(outcomes.edge)} test questions (SmolLM2 edge, replay cloud)",
        xlim=(-2, 102),
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
