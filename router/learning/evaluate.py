"""`sllm evaluate`: a policy's figures on an outcome table, with random and oracle routing
computed on the same rows as reference lines."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from router.learning import metrics
from router.learning.grouped import group_of
from router.learning.thresholds import Operating, Target, simulate
from router.learning.train import FloatArray, Labelled, policy_scores
from router.scorer import Policy

# The target only labels the operating point; simulate() needs one.
_ANY_TARGET = Target("cloud_share", 1.0)


def _per_task(score: FloatArray, data: Labelled) -> dict[str, dict[str, float]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(data.rows):
        groups[group_of(row) or "all"].append(index)
    return {
        task: {
            "rows": len(index),
            "auroc": metrics.auroc(data.edge[index] >= 0.5, score[index]),
        }
        for task, index in sorted(groups.items())
    }


def _block(score: FloatArray, data: Labelled) -> dict[str, Any]:
    return {
        **metrics.figures(score, data.edge, data.cloud).as_dict(),
        "rows": len(data.rows),
        "per_task": _per_task(score, data),
    }


def _unseen(policy: Policy, data: Labelled) -> dict[str, Any] | None:
    """The figures on rows of groups (tasks) the policy's training table did not have;
    None when the policy does not list its groups or fewer than two rows are unseen."""
    seen = policy.manifest.validation.get("groups")
    if not isinstance(seen, dict):
        return None
    index = np.flatnonzero([group_of(row) not in seen for row in data.rows])
    if len(index) < 2:
        return None
    unseen = data.subset(index)
    report = _report(policy, unseen)[0]
    report["groups"] = sorted({group_of(row) for row in unseen.rows})
    return report


def evaluate(
    policy: Policy,
    rows: list[Any],
    *,
    json_path: Path | None = None,
    plot_path: Path | None = None,
) -> dict[str, Any]:
    """The figures as the JSON object `--json` writes (keys in docs/learning.md)."""
    data = Labelled.of(rows)
    if len(data.rows) < 2:
        raise ValueError("the table needs at least two rows with a known edge outcome")
    report, pre, after, at_thresholds = _report(policy, data)
    unseen = _unseen(policy, data)
    if unseen is not None:
        report["unseen_groups"] = unseen
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        plot_path = plot_path or json_path.with_suffix(".png")
    if plot_path is not None:
        _plot(
            plot_path,
            data,
            pre,
            after if len(data.answered) else None,
            at_thresholds.cloud_share,
            at_thresholds.quality,
        )
    return report


def _report(
    policy: Policy, data: Labelled
) -> tuple[dict[str, Any], FloatArray, FloatArray, Operating]:
    """The four routers' figures on these rows, and the scores and operating point behind."""
    pre, after = policy_scores(policy, data.rows)
    report: dict[str, Any] = {"pre_generation": _block(pre, data)}
    answered = len(data.answered) > 0
    if answered:
        report["cascade"] = _block(after, data)
    at_thresholds = simulate(
        pre,
        after,
        data.edge,
        data.cloud,
        data.weights,
        policy.pre_generation_threshold,
        policy.cascade_threshold if policy.has_cascade and answered else 0.0,
        _ANY_TARGET,
    )
    report["pre_generation"]["policy"] = {
        "version": policy.version,
        "edge_quality": float(data.edge.mean()),
        "cloud_quality": float(data.cloud.mean()),
        "at_thresholds": {k: v for k, v in at_thresholds.as_dict().items() if k != "target_met"},
    }
    report["random"] = metrics.random_figures(data.edge, data.cloud).as_dict()
    report["oracle"] = metrics.figures(
        metrics.oracle_score(data.edge, data.cloud), data.edge, data.cloud
    ).as_dict()
    return report, pre, after, at_thresholds


def _plot(
    path: Path,
    data: Labelled,
    pre: FloatArray,
    after: FloatArray | None,
    share: float,
    quality: float,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    lines: list[tuple[str, FloatArray]] = [("pre-generation", pre)]
    if after is not None:
        lines.append(("cascade", after))
    lines.append(("oracle", metrics.oracle_score(data.edge, data.cloud)))
    for label, score in lines:
        curve = metrics.routing_curve(score, data.edge, data.cloud)
        axes.plot(curve.cloud_share * 100, curve.quality, label=label)
    edge_q, cloud_q = float(data.edge.mean()), float(data.cloud.mean())
    axes.plot([0, 100], [edge_q, cloud_q], linestyle=":", color="grey", label="random")
    axes.axhline(edge_q, linestyle="--", color="tab:grey", linewidth=0.8, label="edge only")
    axes.axhline(cloud_q, linestyle="--", color="tab:red", linewidth=0.8, label="cloud only")
    axes.scatter([share * 100], [quality], color="black", zorder=5, label="policy thresholds")
    axes.set_xlabel("cloud calls (%)")
    axes.set_ylabel("quality (mean score)")
    axes.set_title(f"Quality against cloud share ({len(data.rows)} rows)")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def print_report(report: dict[str, Any]) -> None:
    _print_block(report)
    unseen = report.get("unseen_groups")
    if unseen is None:
        return
    tasks = f"{len(unseen['groups'])} tasks its training table did not have"
    if unseen["pre_generation"]["rows"] == report["pre_generation"]["rows"]:
        print(f"every row is of the {tasks}")
    else:
        print(f"\non the {tasks}:")
        _print_block(unseen)


def _print_block(report: dict[str, Any]) -> None:
    policy = report["pre_generation"]["policy"]
    point = policy["at_thresholds"]
    print(
        f"policy {policy['version']} on {report['pre_generation']['rows']} rows: "
        f"edge-only quality {policy['edge_quality']:.3f}, "
        f"cloud-only {policy['cloud_quality']:.3f}"
    )
    print(
        f"at its thresholds: quality {point['quality']:.3f}, "
        f"cloud share {point['cloud_share']:.3f} "
        f"(direct {point['direct_cloud_share']:.3f}, escalated {point['escalation_share']:.3f})"
    )
    print(f"{'router':<16}{'AUROC':>8}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}{'saved@95%':>11}")
    for name in ("pre_generation", "cascade", "random", "oracle"):
        if name in report:
            f = report[name]
            print(
                f"{name:<16}{f['auroc']:>8.3f}{f['apgr']:>8.3f}"
                f"{f['cpt50'] * 100:>9.1f}%{f['cpt80'] * 100:>9.1f}%"
                f"{f['saved_at_95'] * 100:>10.1f}%"
            )
