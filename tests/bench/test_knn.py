"""`sllm bench knn`: its "learner" variant is the learner's k-NN, and the command runs
every variant and both cascades on a table (a tiny random BERT in place of the packaged
model, so the test needs no download)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from bench.signals.knn import VARIANTS, Table, pre_generation_scores
from router.learning.knn import KnnScorer
from router.learning.train import Labelled
from router.outcome_table import OutcomeRow, write_table
from sllm.cli import main
from tests.learning.synthetic import VOCABULARY


def _rows(count: int, seed: int) -> list[OutcomeRow]:
    """The tiny model's words, apart: the edge is right about cats, wrong about dogs."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        cat = rng.random() < 0.5
        words = rng.choices(["the", "cat", "sat"] if cat else ["on", "dogs", "."], k=6)
        rows.append(
            OutcomeRow(
                id=f"r{seed}-{i}",
                prompt=" ".join(words),
                task=f"task{i % 4}",
                edge_answer=" ".join(rng.sample(VOCABULARY, 6)),
                edge_score=float(cat != (rng.random() < 0.1)),
                cloud_score=1.0,
            )
        )
    return rows


def test_the_learner_variant_is_the_learners_knn() -> None:
    rng = np.random.default_rng(5)
    embedding = rng.normal(size=(120, 6)).astype(np.float32)
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    table = Table.of(Labelled.of(_rows(120, seed=1)), embedding)
    train, test = np.arange(90), np.arange(90, 120)
    learner = KnnScorer.fit(embedding[train], table.data.acceptable[train])
    np.testing.assert_allclose(
        pre_generation_scores(table, VARIANTS["k50 (learner)"], train, test),
        learner.predict(embedding[test]),
        atol=1e-6,
    )


@pytest.mark.parametrize("folds", ["random", "group"])
def test_every_variant_and_both_cascades_are_measured(
    tmp_path: Path, tiny_packaged_model: None, folds: str
) -> None:
    table, out = tmp_path / "train.jsonl", tmp_path / "knn.json"
    write_table(_rows(150, seed=2), table)
    command = ["bench", "knn", "--data", str(table), "--folds", folds, "--seeds", "0"]
    assert main([*command, "--cache", str(tmp_path / "cache"), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures) == {*VARIANTS, "cascade", "cascade + query_difficulty"}
    assert all(found["rows"] == 150 for found in figures.values())
    # Cats and dogs lie apart in the tiny model's embedding: the neighbours know (the
    # labels are flipped for a tenth of the rows).
    assert figures["k50 (learner)"]["auroc"] > 0.7
    assert list((tmp_path / "cache").glob("*.npy"))  # the embeddings are kept
    assert main([*command, "--variants", "k50;no such variant"]) == 2
