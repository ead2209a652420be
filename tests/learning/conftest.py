"""Policies learned once per session from the synthetic tables (learning takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.outcome_table import write_table
from sllm.cli import main
from tests.learning.synthetic import planted_answer_rule, planted_query_rule


def learn(table: Path, out: Path, *extra: str, target: str = "quality=0.95") -> int:
    return main(
        ["learn", "--data", str(table), "--target", target, "--out", str(out), "--quiet", *extra]
    )


@pytest.fixture(scope="session")
def query_rule_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "query_rule.jsonl"
    write_table(planted_query_rule(1200, seed=1), path)
    return path


@pytest.fixture(scope="session")
def query_rule_policy(query_rule_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("policies") / "query_rule"
    assert learn(query_rule_table, out) == 0
    return out


@pytest.fixture(scope="session", params=["logprob", "text"])
def answer_rule_policy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    via: str = request.param
    table = tmp_path_factory.mktemp("tables") / f"answer_rule_{via}.jsonl"
    write_table(planted_answer_rule(800, seed=2, via=via), table)
    out = tmp_path_factory.mktemp("policies") / f"answer_rule_{via}"
    assert learn(table, out) == 0
    return via, out
