"""A k-NN difficulty model's score read by the cascade model (`signals.DIFFICULTY_SIGNAL`):
left-one-out on the training rows, the router's pre-generation score at run time."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from router.learning import metrics
from router.learning.knn import KnnScorer
from router.learning.train import Embed, LearningError, Models, policy_scores
from router.learning.train import Labelled as LabelledRows
from router.outcome_table import OutcomeRow, write_table
from router.scorer import Policy
from router.signals import DIFFICULTY_SIGNAL, EdgeSignals, signal_vector
from tests.learning.conftest import learn
from tests.learning.synthetic import VOCABULARY


def test_leave_one_out_is_the_score_of_a_model_fitted_without_the_row() -> None:
    rng = np.random.default_rng(2)
    embeddings = rng.normal(size=(80, 5)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    labels = rng.random(80) < 0.4
    weights = rng.random(80) + 0.5
    model = KnnScorer.fit(embeddings, labels, weights)
    expected = [
        KnnScorer.fit(np.delete(embeddings, i, 0), np.delete(labels, i), np.delete(weights, i))
        .predict(embeddings[i : i + 1])
        .item()
        for i in range(80)
    ]
    np.testing.assert_allclose(model.leave_one_out(), expected, atol=1e-6)
    rows = np.array([5, 0, 79], np.intp)
    np.testing.assert_allclose(model.leave_one_out(rows), np.array(expected)[rows], atol=1e-6)


def test_the_difficulty_signal_is_the_logit_of_the_pre_generation_score() -> None:
    def value(p: float | None) -> float:
        return float(
            signal_vector([DIFFICULTY_SIGNAL], query="q", answer="a", edge=None, p_edge_ok=p)[0]
        )

    assert value(0.5) == 0.0
    assert value(0.9) == pytest.approx(math.log(9.0), abs=1e-6)
    # A share of 0 or 1 among the neighbours is cut, not infinite.
    assert value(0.0) == pytest.approx(math.log(0.01 / 0.99), abs=1e-6)
    assert value(1.0) == pytest.approx(-value(0.0), abs=1e-6)
    assert value(None) == 0.0  # unknown: p = 0.5


def _topic_rows(count: int, seed: int) -> tuple[list[OutcomeRow], dict[str, bool]]:
    """Prompts of random words; the edge is right on one hidden topic, which only the
    embedding knows (the words do not tell it), and its answers are alike."""
    rng = random.Random(seed)
    rows, topic = [], {}
    for i in range(count):
        prompt = " ".join(rng.sample(VOCABULARY, 10))
        topic[prompt] = rng.random() < 0.5
        right = topic[prompt] != (rng.random() < 0.05)
        rows.append(
            OutcomeRow(
                id=f"t{seed}-{i}",
                prompt=prompt,
                edge_answer=" ".join(rng.sample(VOCABULARY, 6)) + " #### 42",
                edge_score=float(right),
                cloud_score=1.0,
            )
        )
    return rows, topic


def _topic_embedder(topic: dict[str, bool]) -> Embed:
    centres = np.eye(8, dtype=np.float32)[:2]

    def embed(prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        rng = np.random.default_rng(len(prompts))
        vectors = centres[[int(topic[p]) for p in prompts]] + rng.normal(
            0.0, 0.3, size=(len(prompts), 8)
        ).astype(np.float32)
        normed: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return normed

    return embed


def test_the_cascade_of_a_knn_policy_reads_what_the_neighbours_did() -> None:
    train_rows, topic = _topic_rows(300, seed=0)
    fresh_rows, fresh_topic = _topic_rows(200, seed=1)
    embed = _topic_embedder({**topic, **fresh_topic})
    train, fresh = LabelledRows.of(train_rows), LabelledRows.of(fresh_rows)

    models = Models.fit(train, "auto", embed)
    assert models.signal_names[-1] == DIFFICULTY_SIGNAL
    _, after = models.scores(fresh_rows)
    assert after is not None
    assert metrics.auroc(fresh.acceptable, after) > 0.9

    # Without it the cascade reads the words and the answers, which say nothing here.
    words_only = Models.fit(train, "text", embed)
    assert DIFFICULTY_SIGNAL not in words_only.signal_names
    _, blind = words_only.scores(fresh_rows)
    assert blind is not None
    assert metrics.auroc(fresh.acceptable, blind) < 0.7


def test_the_difficulty_signal_needs_the_knn_model() -> None:
    rows, _ = _topic_rows(100, seed=2)
    with pytest.raises(LearningError, match="embedding-knn"):
        Models.fit(LabelledRows.of(rows), f"text_final_marker,{DIFFICULTY_SIGNAL}")


def test_a_knn_policy_scores_after_generation_with_the_pre_generation_score(
    tmp_path: Path, tiny_packaged_model: None
) -> None:
    # The tiny model's words; the edge is right about cats, wrong about dogs.
    rng = random.Random(3)
    rows = []
    for i in range(160):
        cat = rng.random() < 0.5
        words = rng.choices(["the", "sat", "on", "mat", "."], k=5) + [
            "cat" if cat else "dogs"
        ] * rng.randint(1, 3)
        rng.shuffle(words)
        rows.append(
            OutcomeRow(
                id=f"c{i}",
                prompt=" ".join(words),
                edge_answer=" ".join(rng.sample(VOCABULARY, 6)),
                edge_score=float(cat != (rng.random() < 0.1)),
                cloud_score=1.0,
            )
        )
    write_table(rows, tmp_path / "table.jsonl")
    # The learner checks that the exported graphs give its own scores (to 1e-5).
    assert (
        learn(tmp_path / "table.jsonl", tmp_path / "policy", "--difficulty", "embedding-knn") == 0
    )
    policy = Policy.load(tmp_path / "policy")
    assert policy.cascade_signals[-1] == DIFFICULTY_SIGNAL
    embedding = policy.manifest.scorer.embedding
    assert embedding is not None and embedding.dimension == 8  # the tiny model
    edge = EdgeSignals()
    query, answer = rows[0].prompt, rows[0].edge_answer or ""
    assert policy.p_edge_ok_after(query, answer, edge, 0.95) > policy.p_edge_ok_after(
        query, answer, edge, 0.05
    )
    # The learner's and `sllm evaluate`'s scores after generation read the same score.
    pre, after = policy_scores(policy, rows[:20])
    expected = [
        policy.p_edge_ok_after(row.prompt, row.edge_answer or "", edge, float(p))
        for row, p in zip(rows[:20], pre, strict=True)
    ]
    np.testing.assert_allclose(after, expected, atol=1e-6)
