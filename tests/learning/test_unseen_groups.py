"""Validation on tasks the models never saw: `sllm learn` folds by task, `sllm evaluate`
reports the rows of tasks the policy's table did not have, `outcomes split --by-task`
makes such a test table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router.learning.thresholds import Scored, Target, _resamples, choose
from router.outcome_table import read_table, write_table
from router.scorer import Policy
from sllm.cli import main
from tests.learning.conftest import learn
from tests.learning.synthetic import planted_query_rule, planted_task_rule


@pytest.fixture(scope="module")
def task_rule_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "task_rule.jsonl"
    write_table(planted_task_rule(1200, seed=5), path)
    return path


def test_a_model_that_learned_which_task_is_hard_is_found_out(
    task_rule_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert learn(task_rule_table, tmp_path / "policy", "--unseen-groups", "report") == 0
    validation = Policy.load(tmp_path / "policy").manifest.validation
    unseen = validation["unseen_groups"]
    assert (unseen["groups"], unseen["folds"], unseen["rows"]) == (10, 5, 1200)
    # Seen tasks: near perfect. Unseen: the task's difficulty cannot be known.
    assert validation["pre_generation"]["auroc"] > 0.9
    assert unseen["pre_generation"]["auroc"] < 0.65
    assert unseen["target_met"] is False
    printed = capsys.readouterr().out
    assert "unseen groups (10 tasks, 5 folds, 1200 rows" in printed
    assert "note: on groups the models never saw the target quality=0.95 is not met" in printed


def test_thresholds_meet_the_target_on_unseen_tasks_when_asked(
    task_rule_table: Path, tmp_path: Path
) -> None:
    assert learn(task_rule_table, tmp_path / "policy") == 0
    validation = Policy.load(tmp_path / "policy").manifest.validation
    assert validation["unseen_groups"]["thresholds"] == "meet"
    assert validation["unseen_groups"]["target_met"] is True
    assert validation["target_met"] is True
    # the price: more cloud calls than the held-out rows alone would need
    assert validation["cloud_share"] > 0.5


def test_a_rule_that_holds_across_tasks_holds_on_unseen_tasks(tmp_path: Path) -> None:
    rows = [
        row.model_copy(update={"task": f"t{i % 7}"})
        for i, row in enumerate(planted_query_rule(1200, seed=6))
    ]
    write_table(rows, tmp_path / "table.jsonl")
    assert learn(tmp_path / "table.jsonl", tmp_path / "policy") == 0
    validation = Policy.load(tmp_path / "policy").manifest.validation
    assert validation["unseen_groups"]["pre_generation"]["auroc"] > 0.9
    assert validation["unseen_groups"]["target_met"] is True
    assert validation["notes"] == []


def test_a_table_of_one_task_says_there_is_nothing_to_hold_out(
    query_rule_policy: Path,
) -> None:
    unseen = Policy.load(query_rule_policy).manifest.validation["unseen_groups"]
    assert unseen["unavailable"] == "one group only (no task or source): no group to hold out"


def test_evaluate_reports_the_tasks_the_policy_never_saw(
    task_rule_table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    assert (
        main(
            [
                "outcomes",
                "split",
                "--data",
                str(task_rule_table),
                "--test-share",
                "0.3",
                "--by-task",
                "--train",
                str(train),
                "--test",
                str(test),
            ]
        )
        == 0
    )
    train_tasks = {row.task for row in read_table(train)}
    test_tasks = {row.task for row in read_table(test)}
    assert train_tasks and test_tasks and not train_tasks & test_tasks
    assert learn(train, tmp_path / "policy", "--unseen-groups", "report") == 0
    mixed = [*read_table(test), *read_table(train)[:300]]
    write_table(mixed, tmp_path / "mixed.jsonl")
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--policy",
                str(tmp_path / "policy"),
                "--data",
                str(tmp_path / "mixed.jsonl"),
                "--json",
                str(tmp_path / "figures.json"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "figures.json").read_text())
    unseen = report["unseen_groups"]
    assert unseen["groups"] == sorted(test_tasks)
    assert unseen["pre_generation"]["rows"] == len(mixed) - 300
    assert unseen["pre_generation"]["auroc"] < 0.7 < report["pre_generation"]["auroc"]
    assert f"on the {len(test_tasks)} tasks its training table did not have" in (
        capsys.readouterr().out
    )


def test_whole_groups_are_resampled_together() -> None:
    groups = np.array([0, 0, 0, 1, 2, 2])
    resampled = _resamples(np.ones(6), 50, seed=0, groups=groups)
    assert (resampled[1:, 0] == resampled[1:, 2]).all()
    assert (resampled[1:, 4] == resampled[1:, 5]).all()
    assert (resampled[1:, [0, 3, 4]].sum(1) == 3).all()  # three groups drawn each time


def test_thresholds_must_meet_the_target_on_the_other_rows_too() -> None:
    # On the held-out rows the score is perfect: two cloud calls of four keep quality 1.0.
    # On the other rows it is backwards: only sending everything keeps the target there.
    edge, cloud = np.array([0.0, 0.0, 1.0, 1.0]), np.ones(4)
    held_out = Scored(np.array([0.1, 0.2, 0.8, 0.9]), None, edge, cloud)
    backwards = Scored(np.array([0.9, 0.8, 0.2, 0.1]), None, edge, cloud)
    target = Target.parse("quality=0.9")
    alone, none = choose(held_out, target, confidence=0)
    assert none is None and alone.cloud_share == 0.5
    both, other = choose(held_out, target, also=backwards, confidence=0)
    assert other is not None and other.target_met and both.target_met
    assert both.cloud_share == 1.0
