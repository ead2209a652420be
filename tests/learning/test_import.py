"""`sllm outcomes import|split` and the outcome table's file format."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from router.outcome_table import OutcomeRow, TableError, read_table, write_table
from sllm.cli import main

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routellm"


def _import(*args: str) -> int:
    return main(["outcomes", "import", *args])


def test_routellm_gsm8k_and_mmlu_give_the_documented_row_counts(tmp_path: Path) -> None:
    table = tmp_path / "routellm.jsonl"
    assert (
        _import(
            "--format", "routellm", str(DATA / "gsm8k"), str(DATA / "mmlu"), "--out", str(table)
        )
        == 0
    )
    rows = read_table(table)
    by_source = Counter(row.source for row in rows)
    assert by_source == {"routellm/gsm8k": 989, "routellm/mmlu": 12534}
    gsm8k = [row for row in rows if row.source == "routellm/gsm8k"]
    mmlu = [row for row in rows if row.source == "routellm/mmlu"]
    # docs/outcome-table.md: Mixtral (edge) right on 630 GSM8K questions, GPT-4 on 853
    assert sum(row.edge_score == 1.0 for row in gsm8k) == 630
    assert sum(row.cloud_score == 1.0 for row in gsm8k) == 853
    assert all(row.edge_answer for row in gsm8k)
    assert all(row.edge_answer is None for row in mmlu)
    assert len({row.task for row in mmlu}) == 47
    assert sum(row.edge_score == 1.0 for row in mmlu) == 8411
    assert sum(row.cloud_score == 1.0 for row in mmlu) == 10046
    assert len({row.id for row in rows}) == len(rows)


def test_a_file_without_the_model_columns_is_refused_with_their_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "other.csv"
    bad.write_text("prompt,answer\nWhat?,42\n")
    assert _import("--format", "routellm", str(bad), "--out", str(tmp_path / "t.jsonl")) == 2
    error = capsys.readouterr().err
    assert "other.csv" in error
    assert "gpt-4-1106-preview" in error


def test_generic_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text(
        "prompt,edge_correct,cloud_correct,edge_response,cloud_cost,task\n"
        '"What is 2+2?",True,True,4,0.002,math\n'
        '"Capital of Peru?",False,1,Quito,,geo\n'
    )
    jsonl_file = tmp_path / "mine.jsonl"
    jsonl_file.write_text(
        json.dumps({"id": "x1", "question": "Is water wet?", "edge_score": 0.5})
        + "\n\n"
        + json.dumps({"prompt": "2*3?", "edge_correct": True, "cloud_correct": False})
        + "\n"
    )
    table = tmp_path / "t.jsonl"
    assert _import("--format", "generic", str(csv_file), str(jsonl_file), "--out", str(table)) == 0
    rows = read_table(table)
    assert [r.prompt for r in rows] == ["What is 2+2?", "Capital of Peru?", "Is water wet?", "2*3?"]
    assert [r.edge_score for r in rows] == [1.0, 0.0, 0.5, 1.0]
    assert [r.cloud_score for r in rows] == [1.0, 1.0, None, 0.0]
    assert rows[0].edge_answer == "4" and rows[0].cloud_cost_usd == 0.002
    assert rows[1].cloud_cost_usd is None and rows[1].task == "geo"
    assert rows[2].id == "x1"
    assert [r.edge_acceptable for r in rows] == [True, False, True, True]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("question_text,edge_correct\nhi,True\n", "mine.csv:2: needs a text column 'prompt'"),
        ("prompt,cloud_correct\nhi,True\n", "mine.csv:2: needs 'edge_correct' or 'edge_score'"),
        ("prompt,edge_correct\nhi,maybe\n", "mine.csv:2: 'maybe' is not a correctness value"),
        ("prompt,edge_score\nhi,3\n", "mine.csv:2: score 3.0 is outside [0, 1]"),
    ],
)
def test_generic_import_names_the_line_and_what_is_wrong(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(content)
    out = tmp_path / "t.jsonl"
    assert _import("--format", "generic", str(path), "--out", str(out)) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_table_round_trip_and_bad_lines(tmp_path: Path) -> None:
    rows = [
        OutcomeRow(
            id="a",
            prompt="p",
            edge_score=1.0,
            edge_signals={"mean_logprob": -0.5, "exit_reason": "SETTLED"},
        ),
        OutcomeRow(id="b", prompt="ünï\ncode", cloud_score=0.0, weight=4.0),
    ]
    path = tmp_path / "t.jsonl"
    assert write_table(rows, path) == 2
    assert read_table(path) == rows
    with path.open("a") as out:
        out.write('{"id": "c", "prompt": "x", "edge_score": 2}\n')
    with pytest.raises(TableError, match=r"t\.jsonl:3: not an outcome row"):
        read_table(path)


def test_split_is_fixed_and_disjoint(tmp_path: Path) -> None:
    rows = [OutcomeRow(id=f"r{i}", prompt=f"q{i}", edge_score=1.0) for i in range(400)]
    table = tmp_path / "t.jsonl"
    write_table(rows, table)
    for attempt in range(2):
        assert (
            main(
                [
                    "outcomes",
                    "split",
                    "--data",
                    str(table),
                    "--test-share",
                    "0.3",
                    "--train",
                    str(tmp_path / f"train{attempt}.jsonl"),
                    "--test",
                    str(tmp_path / f"test{attempt}.jsonl"),
                ]
            )
            == 0
        )
    train = {r.id for r in read_table(tmp_path / "train0.jsonl")}
    test = {r.id for r in read_table(tmp_path / "test0.jsonl")}
    assert not train & test and len(train | test) == 400
    assert 80 < len(test) < 160
    assert test == {r.id for r in read_table(tmp_path / "test1.jsonl")}


def test_merge_keeps_the_first_row_of_each_id(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_table(
        [
            OutcomeRow(id="x", prompt="p", edge_score=1.0),
            OutcomeRow(id="y", prompt="q", edge_score=0.0),
        ],
        first,
    )
    write_table(
        [
            OutcomeRow(id="y", prompt="q", edge_score=1.0),
            OutcomeRow(id="z", prompt="r", edge_score=1.0),
        ],
        second,
    )
    out = tmp_path / "merged.jsonl"
    assert main(["outcomes", "merge", str(first), str(second), "--out", str(out)]) == 0
    assert [(r.id, r.edge_score) for r in read_table(out)] == [("x", 1.0), ("y", 0.0), ("z", 1.0)]
