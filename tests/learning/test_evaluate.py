"""`sllm evaluate`: the figures RouteLLM reports, with random and oracle on the same rows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from router.learning import metrics
from router.outcome_table import write_table
from sllm.cli import main
from tests.learning.synthetic import planted_answer_rule, planted_query_rule

FIGURES = {"auroc", "apgr", "cpt50", "cpt80", "saved_at_95"}


def test_apgr_and_cpt_on_a_worked_example() -> None:
    # Four queries; only the second gains from the cloud. A router that sends it first:
    # quality 0.5 with no cloud call, 0.75 from one call of four on.
    edge, cloud = np.array([1.0, 0.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0, 1.0])
    curve = metrics.routing_curve(np.array([0.9, 0.1, 0.5, 0.8]), edge, cloud)
    assert curve.quality.tolist() == [0.5, 0.75, 0.75, 0.75, 0.75]
    # area 0.71875 between edge-only 0.5 and cloud-only 0.75
    assert metrics.apgr(curve) == pytest.approx(0.875)
    assert metrics.cpt(curve, 0.5) == 0.25
    assert metrics.cpt(curve, 1.0) == 0.25
    # 95% of always-cloud quality (0.7125) needs one cloud call of four: three saved
    assert metrics.saved_at(curve, 0.95) == 0.75


def _evaluate(policy: Path, rows: list, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    table = tmp_path / "test.jsonl"
    write_table(rows, table)
    out = tmp_path / "figures.json"
    assert (
        main(["evaluate", "--policy", str(policy), "--data", str(table), "--json", str(out)]) == 0
    )
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    report: dict = json.loads(out.read_text())  # type: ignore[type-arg]
    return report


def test_evaluate_writes_the_four_routers_and_a_plot(
    answer_rule_policy: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    via, policy = answer_rule_policy
    report = _evaluate(policy, planted_answer_rule(400, seed=41, via=via), tmp_path)
    assert set(report) == {"pre_generation", "cascade", "random", "oracle"}
    for name in report:
        assert set(report[name]) >= FIGURES
        assert 0.0 <= report[name]["cpt50"] <= report[name]["cpt80"] <= 1.0
    assert report["cascade"]["auroc"] > 0.9
    assert report["cascade"]["apgr"] > report["random"]["apgr"]
    assert 0.4 < report["random"]["apgr"] < 0.6
    assert report["oracle"]["auroc"] == 1.0
    assert report["oracle"]["apgr"] >= report["cascade"]["apgr"]
    printed = capsys.readouterr().out
    assert "cascade" in printed and "oracle" in printed


def test_without_edge_answers_there_is_no_cascade_block(
    query_rule_policy: Path, tmp_path: Path
) -> None:
    report = _evaluate(query_rule_policy, planted_query_rule(400, seed=42), tmp_path)
    assert set(report) == {"pre_generation", "random", "oracle"}
    assert report["pre_generation"]["auroc"] > 0.9


def test_evaluate_refuses_a_bad_policy_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "t.jsonl"
    write_table(planted_query_rule(20, seed=1), table)
    assert main(["evaluate", "--policy", str(tmp_path), "--data", str(table)]) == 2
    assert "policy.json" in capsys.readouterr().err


def test_a_policy_without_cascade_is_evaluated_on_the_edge_confidence(
    query_rule_policy: Path, tmp_path: Path
) -> None:
    # As in the router: without a cascade model, the edge's own confidence score decides
    # after generation. Here that score knows the outcome exactly.
    rows = [
        row.model_copy(
            update={"edge_signals": replace(row.edge_signals, confidence_score=row.edge_score)}
        )
        for row in planted_answer_rule(200, seed=43, via="text")
        if row.edge_signals is not None
    ]
    report = _evaluate(query_rule_policy, rows, tmp_path)
    assert report["cascade"]["auroc"] == 1.0
    assert report["pre_generation"]["auroc"] < 0.75
