"""The reasoning mode, learned (router/learning/modes.py): a table with both modes' outcomes
gives a policy with a mode model that picks the better mode per question, validated on
questions it never saw in either mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from router.learning import modes
from router.outcome_table import write_table
from router.scorer import Policy
from tests.learning.conftest import learn
from tests.learning.synthetic import (
    DIRECT_QUESTION,
    STEPWISE_QUESTION,
    planted_mode_rule,
    planted_query_rule,
)


def test_the_policy_gets_a_mode_model_that_prefers_step_by_step_where_it_wins(
    mode_rule_policy: Path,
) -> None:
    policy = Policy.load(mode_rule_policy)
    assert policy.has_mode_model
    assert (mode_rule_policy / "scorer_step_by_step.onnx").is_file()
    direct, step = policy.p_edge_ok_by_mode(STEPWISE_QUESTION)
    assert step is not None and step > 0.7 > 0.3 > direct
    direct, step = policy.p_edge_ok_by_mode(DIRECT_QUESTION)
    assert step is not None and direct > 0.7 > 0.3 > step


def test_the_mode_choice_is_validated_on_unseen_questions_against_the_alternatives(
    mode_rule_policy: Path,
) -> None:
    manifest = json.loads((mode_rule_policy / "policy.json").read_text())
    assert manifest["step_by_step"]["file"] == "scorer_step_by_step.onnx"
    figures = manifest["validation"]["reasoning_mode"]
    every = figures["all"]
    assert figures["questions"] > 100
    # Each fixed mode is right on about half the questions, the learned choice on most:
    # the planted rule (3% noise per answer), read from about 750 training questions.
    assert every["direct"]["quality"] < 0.65 and every["step_by_step"]["quality"] < 0.65
    assert every["learned"]["quality"] > 0.8
    assert every["oracle"]["quality"] >= every["learned"]["quality"]
    assert manifest["step_by_step"]["margin"] == figures["margin"]
    assert 0.3 < every["learned"]["step_by_step_share"] < 0.7
    # Tokens follow the mode: 8 direct, 120 step by step.
    assert every["direct"]["mean_tokens"] == 8 and every["step_by_step"]["mean_tokens"] == 120
    assert set(figures["by_task"]) == {"task0", "task1", "task2", "task3"}
    notes = manifest["validation"]["notes"]
    assert any(note.startswith("reasoning mode on ") for note in notes)


def test_without_step_by_step_rows_there_is_no_mode_model(query_rule_policy: Path) -> None:
    assert not Policy.load(query_rule_policy).has_mode_model
    manifest = json.loads((query_rule_policy / "policy.json").read_text())
    assert manifest["step_by_step"] is None
    assert manifest["validation"]["reasoning_mode"] == {
        "unavailable": "the table has no step-by-step rows"
    }


def test_too_few_step_by_step_rows_give_no_mode_model_and_say_why(tmp_path: Path) -> None:
    rows = planted_query_rule(400, seed=3)
    step = [
        row.model_copy(update={"id": f"{row.id}@STEP_BY_STEP", "reasoning_mode": "STEP_BY_STEP"})
        for row in planted_mode_rule(8, seed=4)
        if row.reasoning_mode == "STEP_BY_STEP"
    ]
    table = tmp_path / "few.jsonl"
    write_table([*rows, *step], table)
    assert learn(table, tmp_path / "policy") == 0
    assert not Policy.load(tmp_path / "policy").has_mode_model
    reason = json.loads((tmp_path / "policy" / "policy.json").read_text())["validation"][
        "reasoning_mode"
    ]["unavailable"]
    assert reason.startswith("no mode model (the training part of the 8 step-by-step rows")
    assert reason.endswith("the answer format decides the mode")


def test_the_margin_is_the_largest_with_the_best_quality() -> None:
    p_direct = np.array([0.5, 0.5, 0.5, 0.5])
    p_step = np.array([0.9, 0.7, 0.6, 0.2])
    # Step by step is right on the first two questions only, direct on the last two.
    direct, step = np.array([0.0, 0.0, 1.0, 1.0]), np.array([1.0, 1.0, 0.0, 0.0])
    margin = modes.choose_margin(p_direct, p_step, direct, step)
    assert 0.1 < margin < 0.2
    # Step by step never wins: it is never worth its tokens.
    assert modes.choose_margin(p_direct, p_step, np.ones(4), np.ones(4)) == 1.0
