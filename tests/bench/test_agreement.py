"""`sllm bench agreement`: the agreement of a question's direct and step-by-step answers,
on a table where it is planted (the answers agree exactly when the direct one is right)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from router.outcome_table import OutcomeRow, write_table
from router.signals import EdgeSignals
from sllm.cli import main


def _planted(questions: int) -> list[OutcomeRow]:
    rng = random.Random(7)
    rows = []
    for i in range(questions):
        right = rng.random() < 0.5
        prompt = f"question {i} " + " ".join(rng.sample([f"w{k}" for k in range(50)], 8))
        signals = EdgeSignals(mean_logprob=rng.gauss(-1.0, 0.3), confidence_score=rng.random())
        # The gold answer, and another number: the answer's text says nothing of which.
        gold, other = rng.sample(range(10, 99), 2)
        answers = {"DIRECT": gold if right else other, "STEP_BY_STEP": gold}
        for mode, answer in answers.items():
            rows.append(
                OutcomeRow(
                    id=f"q{i}@{mode}",
                    prompt=prompt,
                    task=f"task{i % 4}",
                    answer_format="NUMBER",
                    edge_answer=f"The answer is {answer}",
                    edge_score=float(answer == gold),
                    edge_signals=signals,
                    reasoning_mode=mode,  # type: ignore[arg-type]
                )
            )
    return rows


def test_planted_agreement_ranks_the_direct_answers_perfectly(tmp_path: Path) -> None:
    table, out = tmp_path / "both.jsonl", tmp_path / "agreement.json"
    write_table(_planted(240), table)
    assert main(["bench", "agreement", "--table", str(table), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["questions"] == 240
    assert figures["all_rows"]["auroc_agreement"] == 1.0
    # The edge's confidence is noise here.
    assert 0.35 < figures["all_rows"]["auroc_confidence"] < 0.65
    assert set(figures["by_task"]) == {"task0", "task1", "task2", "task3"}
    assert all(task["auroc_agreement"] == 1.0 for task in figures["by_task"].values())
    cascade = figures["cascade"]
    assert cascade["with agreement"]["task_folds"]["auroc"] > 0.95
    assert cascade["without agreement"]["task_folds"]["auroc"] < 0.75
