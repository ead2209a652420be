"""`sllm outcomes collect`: questions from ../shared/data answered by the real edge worker,
judged against gold, into an outcome table the learner reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_worker.process import EdgeWorkerProcess
from router.learning.datasets import TASKS, load, sample
from router.outcome_table import read_table
from sllm.answers import AnswerFormat
from sllm.cli import main


@pytest.mark.parametrize(
    ("task", "rows", "first_gold", "answer_format"),
    [
        ("gsm8k", 989, ("18",), AnswerFormat.NUMBER),
        ("svamp", 800, ("51.0",), AnswerFormat.NUMBER),
        ("aqua", 200, ("A",), AnswerFormat.CHOICE_LETTER),
        ("strategyqa", 2061, ("yes",), AnswerFormat.YES_NO),
        ("boolq", 2600, ("no",), AnswerFormat.YES_NO),
        ("nq_open", 2900, ("14 December 1972 UTC", "December 1972"), AnswerFormat.FREE_TEXT),
        ("webquestions", 944, ("Bahamian dollar",), AnswerFormat.FREE_TEXT),
    ],
)
def test_each_task_loads_with_its_gold_answers(
    task: str, rows: int, first_gold: tuple[str, ...], answer_format: AnswerFormat
) -> None:
    questions = load(task)
    assert len(questions) == rows
    assert questions[0].gold == first_gold
    assert questions[0].answer_format is answer_format
    assert len({q.id for q in questions}) == rows
    assert all(q.prompt.strip() for q in questions)


def test_sample_is_fixed_by_its_seed_and_mixes_tasks() -> None:
    first = sample(list(TASKS), 5, seed=3)
    assert [q.id for q in first] == [q.id for q in sample(list(TASKS), 5, seed=3)]
    assert {q.task for q in first} == set(TASKS)
    assert len(first) == 35
    assert [q.task for q in first[:7]] != list(TASKS)  # interleaved, not task by task


def test_unknown_task_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "outcomes",
                "collect",
                "--edge",
                "127.0.0.1:1",
                "--tasks",
                "gsm8k,chess",
                "--out",
                str(tmp_path / "t.jsonl"),
            ]
        )
        == 2
    )
    assert "unknown tasks ['chess']" in capsys.readouterr().err


@pytest.mark.slow
def test_collect_from_the_real_edge_worker(edge_server: EdgeWorkerProcess, tmp_path: Path) -> None:
    table = tmp_path / "edge.jsonl"
    assert (
        main(
            [
                "outcomes",
                "collect",
                "--edge",
                edge_server.target,
                "--tasks",
                "strategyqa,svamp",
                "--per-task",
                "2",
                "--max-tokens",
                "16",
                "--quiet",
                "--out",
                str(table),
            ]
        )
        == 0
    )
    rows = read_table(table)
    assert sorted(row.task for row in rows) == ["strategyqa", "strategyqa", "svamp", "svamp"]
    for row in rows:
        assert row.edge_score in (0.0, 1.0)
        assert row.edge_answer is not None
        assert row.edge_signals is not None and row.edge_signals.completion_tokens > 0
        assert row.edge_signals.exit_reason in ("SETTLED", "COLLAPSE", "BUDGET", "LENGTH", "STOP")
        assert row.edge_model and row.label_source == "judge:gold"
        assert row.cloud_score is None  # no cloud ran: the learner counts the cloud right
        assert row.reasoning_mode == "DIRECT"


@pytest.mark.slow
def test_both_modes_give_a_row_per_mode_with_the_mode_in_its_id(
    edge_server: EdgeWorkerProcess, tmp_path: Path
) -> None:
    table = tmp_path / "both.jsonl"
    arguments = ["outcomes", "collect", "--edge", edge_server.target, "--tasks", "svamp"]
    arguments += ["--per-task", "2", "--max-tokens", "16", "--reasoning", "both", "--quiet"]
    assert main([*arguments, "--out", str(table)]) == 0
    rows = read_table(table)
    assert [row.reasoning_mode for row in rows] == ["DIRECT", "STEP_BY_STEP"] * 2
    questions = {row.id.rsplit("@", 1)[0] for row in rows}
    assert len(questions) == 2
    assert {row.id for row in rows} == {
        f"{q}@{m}" for q in questions for m in ("DIRECT", "STEP_BY_STEP")
    }
    for direct, stepwise in zip(rows[::2], rows[1::2], strict=True):
        assert direct.prompt == stepwise.prompt
