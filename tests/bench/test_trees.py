"""`sllm bench trees`: boosted trees on the signals find an interaction of two signals
that the linear model cannot read (the edge is right exactly when one of two edge
statistics is high, not both: an exclusive or)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from router.outcome_table import OutcomeRow, write_table
from router.signals import EdgeSignals
from sllm.cli import main
from tests.learning.synthetic import VOCABULARY


def _planted_interaction(rows: int, *, seed: int) -> list[OutcomeRow]:
    rng = random.Random(seed)
    table = []
    for i in range(rows):
        confident, long = rng.random() < 0.5, rng.random() < 0.5
        table.append(
            OutcomeRow(
                id=f"x{seed}-{i}",
                prompt=" ".join(rng.sample(VOCABULARY, 12)),
                task=f"task{i % 5}",
                edge_answer=" ".join(rng.sample(VOCABULARY, 8)) + " #### 42",
                edge_score=float(confident != long),
                edge_signals=EdgeSignals(
                    mean_logprob=rng.gauss(-0.3 if confident else -2.0, 0.3),
                    completion_tokens=rng.randrange(40, 60) if long else rng.randrange(5, 20),
                    confidence_score=0.5,
                    answer_found=True,
                ),
                cloud_score=1.0,
            )
        )
    return table


def test_trees_find_an_interaction_the_linear_model_misses(tmp_path: Path) -> None:
    table, out = tmp_path / "train.jsonl", tmp_path / "trees.json"
    write_table(_planted_interaction(400, seed=3), table)
    command = ["bench", "trees", "--data", str(table), "--seeds", "0", "--json", str(out)]
    assert main(command) == 0
    figures = json.loads(out.read_text())
    assert set(figures) == {"linear", "linear+trees", "stacked"}
    assert all(found["rows"] == 400 for found in figures.values())
    assert figures["linear"]["auroc"] < 0.7
    assert figures["linear+trees"]["auroc"] > 0.95
    assert figures["stacked"]["auroc"] > 0.9


def test_group_folds_and_the_pre_generation_model_run(tmp_path: Path) -> None:
    table, out = tmp_path / "train.jsonl", tmp_path / "trees.json"
    write_table(_planted_interaction(200, seed=4), table)
    command = ["bench", "trees", "--data", str(table), "--model", "pre-generation"]
    assert main([*command, "--folds", "group", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    # The prompts say nothing: every scorer is near chance.
    assert all(0.3 < found["auroc"] < 0.7 for found in figures.values())
