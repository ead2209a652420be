"""`sllm bench live` on two questions per task, through the CLI: the real edge worker (bundled
SmolLM2), the replay cloud and a router process, then export, learn, evaluate, hot reload
and AUTO routing. `--keep` leaves every intermediate file for the checks."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.live.run import traffic
from router.learning.datasets import TASKS
from router.outcome_table import OutcomeRow, read_table, write_table
from router.signals import EDGE_SIGNAL_NAMES
from tests.learning.synthetic import planted_answer_rule

QUESTIONS = 2 * len(TASKS)
PRIOR_ROWS = 80
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    scratch = tmp_path_factory.mktemp("live")
    prior = scratch / "prior.jsonl"
    # The learner refuses fewer than 10 rows of each class, and 14 live questions give 1-3
    # where SmolLM2 is right: the learning part is padded with synthetic rows (a planted
    # rule) so that every step runs. The live rows go through every step all the same.
    write_table(planted_answer_rule(PRIOR_ROWS, seed=1, via="logprob"), prior)
    keep = scratch / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sllm",
            "bench",
            "live",
            "--questions",
            str(QUESTIONS),
            "--prior",
            str(prior),
            "--keep",
            str(keep),
            "--out",
            str(scratch / "figures"),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return keep, done.stdout.strip().splitlines()


def _figures(lines: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in lines[-1].split())


def _live(rows: list[OutcomeRow]) -> list[OutcomeRow]:
    return [row for row in rows if row.source == "router"]


@pytest.mark.slow
def test_every_question_is_logged_with_its_feedback(run: tuple[Path, list[str]]) -> None:
    keep, _ = run
    log = read_table(keep / "log.jsonl")
    edge = [row for row in log if row.route == "EDGE"]
    cloud = [row for row in log if row.route == "CLOUD"]
    assert len(edge) == len(cloud) == QUESTIONS and len(log) == 2 * QUESTIONS
    for row in edge:
        assert row.edge_score in (0.0, 1.0) and row.label_source == "feedback:gold"
        assert row.edge_answer and row.edge_signals is not None and row.cloud_score is None
    assert all(row.cloud_score in (0.0, 1.0) and row.cloud_answer for row in cloud)
    assert {row.prompt for row in edge} == {q.prompt for q in traffic(QUESTIONS)}


@pytest.mark.slow
def test_one_row_per_question_with_both_outcomes_split_in_time(
    run: tuple[Path, list[str]],
) -> None:
    keep, _ = run
    learning, testing = read_table(keep / "learn.jsonl"), read_table(keep / "test.jsonl")
    assert len(learning) - len(_live(learning)) == PRIOR_ROWS
    questions = traffic(QUESTIONS)
    live = _live(learning) + testing
    # The first part of the traffic learns, the rest tests: ids in traffic order.
    assert [row.id for row in live] == [q.id for q in questions]
    assert {row.task for row in live} == set(TASKS)
    for row in live:
        assert row.edge_score is not None and row.cloud_score is not None
        assert row.edge_signals is not None and row.cloud_model.startswith("replay-")


@pytest.mark.slow
def test_policies_learned_with_and_without_edge_signals_and_evaluated(
    run: tuple[Path, list[str]],
) -> None:
    keep, lines = run
    with_signals = json.loads((keep / "active-policy" / "policy.json").read_text())
    without = json.loads((keep / "policy-without-signals" / "policy.json").read_text())
    assert set(EDGE_SIGNAL_NAMES) <= set(with_signals["cascade"]["signals"])
    assert not set(EDGE_SIGNAL_NAMES) & set(without["cascade"]["signals"])
    for name in ("with_signals", "without_signals"):
        report = json.loads((keep / f"evaluate-{name}.json").read_text())
        assert {"pre_generation", "cascade", "random", "oracle"} <= set(report)
        assert report["cascade"]["rows"] == QUESTIONS - int(QUESTIONS * 0.7)
    # The router swapped the learned policy in while serving, and routed with it.
    assert f"router hot-reloaded policy {with_signals['version']}" in lines
    swapped = [
        json.loads(line)
        for line in (keep / "router.log").read_text().splitlines()
        if '"policy.swapped"' in line
    ]
    assert [event["version"] for event in swapped] == [with_signals["version"]]


@pytest.mark.slow
def test_last_line_holds_the_figures(run: tuple[Path, list[str]]) -> None:
    _, lines = run
    figures = _figures(lines)
    assert figures["questions"] == str(QUESTIONS) and figures["policy_learned"] == "1"
    for key in (
        "edge_accuracy",
        "cloud_accuracy",
        "cloud_saved_at_95",
        "oracle_cloud_saved_at_95",
        "auto_accuracy",
        "auto_cloud_share",
    ):
        assert 0.0 <= float(figures[key]) <= 1.0, key
    for key in ("auroc_pre_generation", "auroc_with_signals", "auroc_without_signals"):
        # NaN when the few test rows hold one class only.
        value = float(figures[key])
        assert math.isnan(value) or 0.0 <= value <= 1.0, key


@pytest.mark.slow
def test_the_routing_value_table_has_every_router(run: tuple[Path, list[str]]) -> None:
    figures = run[0].parent / "figures"
    rows = json.loads((figures / "live.json").read_text())["routers"]
    names = [row["router"] for row in rows]
    assert names[:2] == ["always edge", "always cloud"]
    assert {
        "pre-generation only (RouteLLM-style)",
        "cascade, offline",
        "sllm, live (cascade, early exit)",
        "oracle",
    } <= set(names)
    assert any(name.startswith("random at ") for name in names)
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["cloud_share"] <= 1.0, row
        assert row["p50_ms"] <= row["p95_ms"], row
    assert (figures / "live.png").stat().st_size > 0
