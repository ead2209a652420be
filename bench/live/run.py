"""The live loop, step by step; figures printed, the last line as key=value pairs.

1. Phase 1: every question goes to the edge (route hint EDGE_ONLY) and to the cloud
   (CLOUD_ONLY) through the router, each answer followed by Feedback from the gold answer,
   so both tiers' outcomes are known for every question, as the learner needs.
2. `sllm outcomes export`, then one row per question (bench.live.table); the first
   LEARN_SHARE of the traffic learns, the rest tests (a time split, as in production).
3. `sllm learn` twice: with the edge's confidence signals (`--signals auto`) and without
   (`--signals text`: the answer-text signals only); `sllm evaluate --json` on the rest.
4. Phase 2: the policy with signals is written into the directory the router watches;
   once the router reports its version, the test questions go through AUTO routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.live import value
from bench.live.processes import REPLAY_LATENCY, live_system
from bench.live.table import per_question
from bench.live.traffic import Answered, Phase, active_policy_version, auto_routed, both_tiers
from bench.live.value import Outcomes
from bench.live.value_plot import plot
from bench.results import write_json
from router.learning.datasets import TASKS, Question, sample
from router.outcome_table import OutcomeRow, read_table, write_table
from router.scorer import default_policy_dir
from sllm import children

SEED = 0
# 86 per task: at least 600 in all.
QUESTIONS = 602
QUICK_QUESTIONS = 42
LEARN_SHARE = 0.7
TARGET = "quality=0.95"
# The cascade model's signals: "auto" adds the edge's confidence statistics to the
# answer-text signals (every answered row has them); "text" leaves them out.
SIGNALS = {"with_signals": "auto", "without_signals": "text"}
RELOAD_TIMEOUT_S = 30.0
GOLD_CLOUD_TASKS = tuple(task for task in TASKS if task != "gsm8k")


class StepFailed(RuntimeError):
    """An sllm command the loop runs failed; the message has its output."""


def _sllm(*args: str) -> str:
    done = children.run([sys.executable, "-m", "sllm", *args])
    if done.returncode != 0:
        raise StepFailed(
            f"sllm {' '.join(args[:2])} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout


def traffic(total: int) -> list[Question]:
    """`total` questions, the seven tasks in equal parts, interleaved at random (seed 0)."""
    return sample(list(TASKS), math.ceil(total / len(TASKS)), seed=SEED)[:total]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def _accuracy_by_task(answered: Sequence[Answered]) -> dict[str, float]:
    by_task: dict[str, list[float]] = defaultdict(list)
    for one in answered:
        by_task[one.question.task].append(one.score)
    return {task: _mean(scores) for task, scores in sorted(by_task.items())}


def _print_phase1(edge: Phase, cloud: Phase) -> None:
    edge_by_task = _accuracy_by_task(edge.answered)
    cloud_by_task = _accuracy_by_task(cloud.answered)
    print(
        f"phase 1: {len(edge.answered)} edge answers, {len(cloud.answered)} cloud answers, "
        f"{len(edge.failures)} + {len(cloud.failures)} failed calls"
    )
    for failure in (edge.failures + cloud.failures)[:5]:
        print(f"  failed: {failure}")
    print(f"  {'task':<14}{'edge right':>11}{'cloud right':>12}  cloud answers")
    for task, accuracy in edge_by_task.items():
        kind = "GOLD (replay)" if task in GOLD_CLOUD_TASKS else "GPT-4 recorded (replay)"
        print(f"  {task:<14}{accuracy:>11.3f}{cloud_by_task.get(task, math.nan):>12.3f}  {kind}")
    print(
        f"  edge call p50 {statistics.median(a.total_ms for a in edge.answered):.0f} ms, "
        f"cloud call p50 {statistics.median(a.total_ms for a in cloud.answered):.0f} ms "
        f"(replay latency {' '.join(REPLAY_LATENCY)})"
    )


def _learn_and_evaluate(
    learn_table: Path, test_table: Path, policy: Path, signals: str, figures: Path
) -> tuple[str, dict[str, Any]]:
    """`sllm learn` then `sllm evaluate --json`: what learn printed, and the figures."""
    learned = _sllm(
        "learn",
        "--data",
        str(learn_table),
        "--target",
        TARGET,
        "--out",
        str(policy),
        "--signals",
        signals,
        "--quiet",
    )
    _sllm("evaluate", "--policy", str(policy), "--data", str(test_table), "--json", str(figures))
    report: dict[str, Any] = json.loads(figures.read_text(encoding="utf-8"))
    return learned.rstrip(), report


def _learn_both(
    learn_table: Path, test_table: Path, policies: dict[str, Path], scratch: Path
) -> dict[str, dict[str, Any]]:
    """With and without the edge's signals, side by side (each is one process)."""
    with ThreadPoolExecutor(len(SIGNALS)) as pool:
        running = {
            name: pool.submit(
                _learn_and_evaluate,
                learn_table,
                test_table,
                policies[name],
                signals,
                scratch / f"evaluate-{name}.json",
            )
            for name, signals in SIGNALS.items()
        }
    reports = {}
    for name, done in running.items():
        learned, reports[name] = done.result()
        print(f"{name}: {learned}")
    return reports


def _decided(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of the policy's final decision: after the edge answered when it has a
    cascade model, else before generation."""
    block: dict[str, Any] = report.get("cascade", report["pre_generation"])
    return block


def _print_learning(reports: dict[str, dict[str, Any]], test_rows: Sequence[OutcomeRow]) -> None:
    with_signals, without = reports["with_signals"], reports["without_signals"]
    right = Counter(row.task for row in test_rows if (row.edge_score or 0.0) >= 0.5)
    rows = Counter(row.task for row in test_rows)
    print("AUROC of p_edge_ok for the edge being right, on the test part:")
    print(
        f"  {'task':<14}{'rows':>5}{'edge right':>11}{'pre-gen':>9}{'cascade':>9}"
        f"{'cascade w/o signals':>21}"
    )

    def per_task(report: dict[str, Any], block: str, task: str) -> float:
        entry = report.get(block, {}).get("per_task", {}).get(task)
        return math.nan if entry is None else float(entry["auroc"])

    for task in sorted(rows):
        print(
            f"  {task:<14}{rows[task]:>5}{right[task]:>11}"
            f"{per_task(with_signals, 'pre_generation', task):>9.3f}"
            f"{per_task(with_signals, 'cascade', task):>9.3f}"
            f"{per_task(without, 'cascade', task):>21.3f}"
        )
    print(
        f"  {'all':<14}{len(test_rows):>5}{sum(right.values()):>11}"
        f"{with_signals['pre_generation']['auroc']:>9.3f}{_decided(with_signals)['auroc']:>9.3f}"
        f"{_decided(without)['auroc']:>21.3f}"
    )
    print("cloud calls saved at 95% of always-cloud quality (share of queries), test part:")
    for label, report, block in (
        ("pre-generation", with_signals, "pre_generation"),
        ("cascade, with the edge's signals", with_signals, "cascade"),
        ("cascade, without them", without, "cascade"),
        ("random", with_signals, "random"),
        ("oracle", with_signals, "oracle"),
    ):
        figures = report.get(block)
        if figures is not None:
            print(f"  {label:<34}{figures['saved_at_95']:>7.3f}   APGR {figures['apgr']:.3f}")


async def _wait_for_policy(target: str, version: str) -> None:
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    while (active := await active_policy_version(target)) != version:
        if time.monotonic() > deadline:
            raise StepFailed(f"the router still serves policy {active}, not {version}")
        await asyncio.sleep(0.5)


def _phase2_figures(auto: Phase, cloud: Phase) -> dict[str, float]:
    always_cloud = {a.question.id: a.score for a in cloud.answered}
    routes = Counter(a.route for a in auto.answered)
    count = max(1, len(auto.answered))
    cloud_calls = sum(routes[r] for r in ("CLOUD", "EDGE_THEN_CLOUD", "EDGE_FALLBACK"))
    accuracy = _mean([a.score for a in auto.answered])
    cloud_accuracy = _mean([always_cloud[a.question.id] for a in auto.answered])
    print(
        f"phase 2: {len(auto.answered)} test questions routed AUTO by the learned policy "
        f"({len(auto.failures)} failed calls)"
    )
    print("  routes: " + ", ".join(f"{r} {n / count:.3f}" for r, n in routes.most_common()))
    print(
        f"  accuracy {accuracy:.3f}; always-cloud on the same questions {cloud_accuracy:.3f} "
        f"(ratio {accuracy / cloud_accuracy:.3f}); cloud calls {cloud_calls / count:.3f} of "
        f"queries (saved {1 - cloud_calls / count:.3f})"
    )
    print(f"  request p50 {statistics.median(a.total_ms for a in auto.answered):.0f} ms")
    return {
        "auto_accuracy": accuracy,
        "auto_cloud_share": cloud_calls / count,
        "auto_over_cloud": accuracy / cloud_accuracy,
        "auto_edge_share": routes["EDGE"] / count,
    }


def _learned_figures(reports: dict[str, dict[str, Any]]) -> dict[str, float]:
    with_signals, without = reports["with_signals"], reports["without_signals"]
    return {
        "auroc_pre_generation": float(with_signals["pre_generation"]["auroc"]),
        "auroc_with_signals": float(_decided(with_signals)["auroc"]),
        "auroc_without_signals": float(_decided(without)["auroc"]),
        "cloud_saved_at_95": float(_decided(with_signals)["saved_at_95"]),
        "cloud_saved_at_95_without_signals": float(_decided(without)["saved_at_95"]),
        "oracle_cloud_saved_at_95": float(with_signals["oracle"]["saved_at_95"]),
    }


class Steps:
    """Wall time per step, printed as each ends (the machine is shared: where did it go)."""

    def __init__(self) -> None:
        self.started = self._last = time.monotonic()

    def done(self, what: str) -> None:
        now = time.monotonic()
        print(f"[{what}: {now - self._last:.0f} s]", flush=True)
        self._last = now


def _scratch(keep: Path | None) -> contextlib.AbstractContextManager[str]:
    if keep is None:
        return tempfile.TemporaryDirectory(prefix="sllm-bench-live-")
    keep.mkdir(parents=True, exist_ok=True)
    if any(keep.iterdir()):
        raise StepFailed(f"--keep {keep}: the directory must be new or empty")
    return contextlib.nullcontext(str(keep))


def _report_value(
    out: Path,
    testing: Sequence[OutcomeRow],
    edge: Phase,
    cloud: Phase,
    policy: Path | None,
    auto: Sequence[Answered],
    figures: dict[str, float],
) -> None:
    """The routing-value table (printed, and with the figures in live.json) and its plot."""
    outcomes = Outcomes.of(testing, edge.answered, cloud.answered)
    rows, scores = value.table(testing, outcomes, policy, auto)
    value.print_table(rows)
    # The headline's reference, also when no policy was learned (then it is alone).
    oracle = next(row for row in rows if row.router == "oracle")
    figures.setdefault("oracle_cloud_saved_at_95", 1.0 - oracle.cloud_share)
    write_json(out, "live", {"routers": value.as_json(rows), "figures": figures})
    plot(out / "live.png", rows, scores, outcomes)


async def _main(total: int, prior: Path | None, keep: Path | None, out: Path | None) -> int:
    steps = Steps()
    questions = traffic(total)
    learning_ids = {q.id for q in questions[: int(len(questions) * LEARN_SHARE)]}
    figures: dict[str, float] = {}
    learned: Path | None = None
    auto = Phase([], [])
    with _scratch(keep) as tmp:
        scratch = Path(tmp)
        policies = {
            "with_signals": scratch / "active-policy",
            "without_signals": scratch / "policy-without-signals",
        }
        shutil.copytree(default_policy_dir(), policies["with_signals"])
        with live_system(scratch, policies["with_signals"]) as system:
            steps.done("start edge worker, replay cloud, router")
            target = system.router.target
            edge, cloud = await both_tiers(target, questions)
            _print_phase1(edge, cloud)
            steps.done("phase 1")
            exported = scratch / "log.jsonl"
            print(
                _sllm(
                    "outcomes", "export", "--db", str(system.outcome_db), "--out", str(exported)
                ).rstrip()
            )
            rows = per_question(read_table(exported), edge.answered, cloud.answered)
            figures["questions"] = len(rows)
            figures["edge_accuracy"] = _mean([row.edge_score or 0.0 for row in rows])
            figures["cloud_accuracy"] = _mean([row.cloud_score or 0.0 for row in rows])
            learning = [row for row in rows if row.id in learning_ids]
            testing = [row for row in rows if row.id not in learning_ids]
            prior_rows = read_table(prior) if prior is not None else []
            learn_table, test_table = scratch / "learn.jsonl", scratch / "test.jsonl"
            write_table([*learning, *prior_rows], learn_table)
            write_table(testing, test_table)
            print(
                f"outcome table: {len(rows)} questions with both outcomes; learning from the "
                f"first {len(learning)}"
                + (f" and {len(prior_rows)} prior rows" if prior_rows else "")
                + f", testing on the last {len(testing)}"
            )
            steps.done("export and table")
            try:
                reports = _learn_both(learn_table, test_table, policies, scratch)
            except StepFailed as refused:
                # Too few rows where the edge was right is the usual cause: say it, and
                # report what phase 1 measured.
                print(f"no policy learned: {refused}")
                figures["policy_learned"] = 0
            else:
                steps.done("learn and evaluate, with and without signals")
                _print_learning(reports, testing)
                figures.update(policy_learned=1, **_learned_figures(reports))
                version = json.loads((policies["with_signals"] / "policy.json").read_text())[
                    "version"
                ]
                await _wait_for_policy(target, version)
                print(f"router hot-reloaded policy {version}")
                test_ids = {row.id for row in testing}
                auto = await auto_routed(target, [q for q in questions if q.id in test_ids])
                figures.update(_phase2_figures(auto, cloud))
                learned = policies["with_signals"]
                steps.done("phase 2")
            if out is not None:
                _report_value(out, testing, edge, cloud, learned, auto.answered, figures)
    figures["minutes"] = (time.monotonic() - steps.started) / 60.0
    print(
        " ".join(
            f"{key}={value if isinstance(value, int) else round(value, 4)}"
            for key, value in figures.items()
        )
    )
    return 0


def run(
    *,
    quick: bool,
    questions: int | None = None,
    prior: Path | None = None,
    keep: Path | None = None,
    out: Path | None = None,
) -> int:
    total = questions or (QUICK_QUESTIONS if quick else QUESTIONS)
    try:
        return asyncio.run(_main(total, prior, keep, out))
    except StepFailed as failed:
        print(f"sllm bench live: {failed}", file=sys.stderr)
        return 1
