"""`sllm bench signals`' measurements on a small table with a planted rule: every
signal scores the random split and the task folds, and the option share is compared
with and without (the RouteLLM tables and the model are the benchmark's, not a test's)."""

from __future__ import annotations

import numpy as np

from bench.signals.run import SIGNALS, Table, _group_folds, _split, option_share_figures
from router.learning.train import Labelled
from router.outcome_table import OutcomeRow
from router.signals import EdgeSignals


def _table(rows: int = 240) -> Table:
    """Four tasks; the edge is right when the query's embedding points one way and its
    option share is high, which the query words echo ("easy")."""
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(rows, 8)).astype(np.float32)
    right = embedding[:, 0] > 0
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    table = [
        OutcomeRow(
            id=f"r{i}",
            prompt=f"{'easy' if right[i] else 'hard'} question number {i % 7}",
            task=f"task{i % 4}",
            answer_format="YES_NO",
            edge_answer="yes",
            edge_score=float(right[i]),
            cloud_score=1.0,
            edge_signals=EdgeSignals(
                answer_found=True, confidence_score=0.5, option_share=0.9 if right[i] else 0.55
            ),
        )
        for i in range(rows)
    ]
    return Table("synthetic", Labelled.of(table), embedding)


def test_every_signal_is_measured_on_a_split_and_on_task_folds() -> None:
    table = _table()
    for signal in SIGNALS:
        for figures in (_split(table, signal), _group_folds(table, signal)):
            assert figures["auroc"] > 0.8, signal
            assert figures["rows"] > 0


def test_the_option_share_is_measured_with_and_without() -> None:
    figures = option_share_figures(_table())
    with_it = figures["cascade with option_share"]["group_folds"]
    without = figures["cascade without option_share"]["group_folds"]
    assert with_it["rows"] == without["rows"] == 240
    assert figures["option_share alone"]["all_rows"]["auroc"] == 1.0
