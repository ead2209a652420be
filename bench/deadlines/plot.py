"""deadlines.png: within-budget shares and accuracy, route shares, and each answer's time
against its budget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.deadlines.run import Outcome

ROUTES = ("EDGE", "CLOUD", "EDGE_THEN_CLOUD", "EDGE_FALLBACK", "NONE")


def plot(path: Path, figures: dict[int, dict[str, float]], outcomes: Sequence[Outcome]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = list(figures)
    labels = [f"{b} ms" if b < 1000 else f"{b / 1000:g} s" for b in budgets]
    x = range(len(budgets))
    figure, (shares, routes, times) = plt.subplots(1, 3, figsize=(15, 5.2))
    for offset, (key, label) in enumerate(
        (
            ("within", "answered within budget"),
            ("within_eligible", "within budget, eligible"),
            ("accuracy", "accuracy"),
        )
    ):
        shares.bar(
            [i + (offset - 1) * 0.27 for i in x],
            [figures[b][key] * 100 for b in budgets],
            width=0.27,
            label=label,
        )
    shares.axhline(99, color="black", linestyle=":", linewidth=0.8, label="target 99%")
    shares.set(
        xticks=list(x),
        xticklabels=labels,
        xlabel="latency budget",
        ylabel="share of requests (%)",
        ylim=(0, 105),
        title="Answers within budget, and accuracy",
    )
    shares.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    bottom = [0.0] * len(budgets)
    for route in ROUTES:
        values = [figures[b][f"route_{route.lower()}"] * 100 for b in budgets]
        if any(values):
            routes.bar(
                list(x),
                values,
                bottom=bottom,
                label=route if route != "NONE" else "refused (no tier fits)",
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    routes.set(
        xticks=list(x),
        xticklabels=labels,
        xlabel="latency budget",
        ylabel="share of requests (%)",
        title="Routes taken",
    )
    routes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    for i, budget in enumerate(budgets):
        mine = [o for o in outcomes if o.budget_ms == budget]
        times.scatter(
            [i + (j % 9 - 4) * 0.03 for j in range(len(mine))],
            [o.wall_ms / budget * 100 for o in mine],
            s=8,
            c=["tab:blue" if o.within else "tab:red" for o in mine],
        )
    times.axhline(100, color="black", linestyle=":", linewidth=0.8)
    times.set(
        xticks=list(x),
        xticklabels=labels,
        xlabel="latency budget",
        ylabel="answer time at the client (% of budget)",
        title="Each request's time (red: late or refused)",
    )
    figure.suptitle(
        "sllm bench deadlines: SmolLM2 edge in the router, replay cloud "
        "400 ms + 30 ms/token, max_tokens 128"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
