"""`sllm bench prompt-reading`: the edge's reading of a prompt is the one its chat template
gives (the bundled model, three short prompts), its statistics are right on plain
numbers, and the cross-validation finds a planted signal in either reading (a small
table with made-up readings: the RouteLLM tables and their readings are the benchmark's)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

from bench.signals import prompt_reading
from bench.signals.prompt_reading import (
    VARIANTS,
    Table,
    best_variant,
    cached_readings,
    cross_validate,
    score_test_rows,
    variant_scores,
)
from bench.signals.reading import LIKELIHOOD_NAMES, PromptReader, likelihood_statistics
from edge_worker.model import EdgeModel
from edge_worker.prompts import ReasoningMode, primer, with_instruction
from router.learning.train import Labelled, held_out
from router.outcome_table import OutcomeRow
from sllm.answers import AnswerFormat
from sllm.chat import ChatMessage
from sllm.models import bundled_model_path

PROMPTS = (
    "What is the capital of France?",
    "Janet has 3 apples and buys 4 more. How many apples does she have?",
    "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. helium\nD. neon\nAnswer:",
)


@pytest.fixture(scope="module")
def reader() -> Iterator[PromptReader]:
    made = PromptReader(bundled_model_path(), threads=1)
    yield made
    made.close()


def test_the_question_is_read_as_the_worker_renders_it(reader: PromptReader) -> None:
    edge = EdgeModel(bundled_model_path(), n_ctx=512, n_threads=1)
    try:
        for prompt in PROMPTS:
            chat = (ChatMessage(role="user", content=prompt),)
            mode, fmt = ReasoningMode.DIRECT, AnswerFormat.CHOICE_LETTER
            rendered = edge.render_prompt(with_instruction(chat, mode, fmt), primer(mode, fmt))
            question = reader.question_tokens(prompt)
            assert rendered[: len(reader.prefix) + len(question)] == reader.prefix + question
    finally:
        edge.close()


def test_a_reading_is_the_same_every_time(reader: PromptReader) -> None:
    first = [reader.read(prompt) for prompt in PROMPTS]
    again = [reader.read(prompt) for prompt in reversed(PROMPTS)][::-1]
    for one, other in zip(first, again, strict=True):
        assert one.hidden.shape == (reader.n_embd,)
        np.testing.assert_allclose(one.likelihood, other.likelihood, atol=1e-4)
        np.testing.assert_allclose(one.hidden, other.hidden, atol=1e-4)
        mean, least, surprise, entropy = one.likelihood
        assert least <= mean < 0 and 0 <= surprise <= 1 and entropy > 0
    assert reader.plain_prefill(PROMPTS[0]) > 0


def test_likelihood_statistics_on_plain_numbers() -> None:
    # Two positions over three tokens: certain of token 0; even between tokens 1 and 2.
    logits = np.array([[50.0, 0.0, 0.0], [-50.0, 10.0, 10.0]], np.float32)
    mean, least, surprise, entropy = likelihood_statistics(logits, [0, 2])
    assert least == pytest.approx(np.log(0.5), abs=1e-6)
    assert mean == pytest.approx(np.log(0.5) / 2, abs=1e-6)
    assert surprise == 0.0
    assert entropy == pytest.approx(np.log(2) / 2, abs=1e-4)
    assert likelihood_statistics(logits, [1, 2])[2] == 0.5


def _table(rows: int, signal: str, folds: str) -> Table:
    """The edge is right when one reading says so: the likelihood's first statistic, or
    the hidden state's first coordinate. The words say nothing."""
    rng = np.random.default_rng(1)
    right = rng.random(rows) < 0.5
    likelihood = rng.normal(size=(rows, len(LIKELIHOOD_NAMES)))
    hidden = rng.normal(size=(rows, 16)).astype(np.float32)
    if signal == "likelihood":
        likelihood[:, 0] += np.where(right, 2.0, -2.0)
    else:
        hidden[:, 0] += np.where(right, 3.0, -3.0)
    words = ["apple", "river", "stone", "cloud", "field", "glass", "paper", "metal"]
    table = [
        OutcomeRow(
            id=f"q{i}",
            prompt=" ".join(rng.choice(words, 6)),
            task=f"task{i % 10}",
            edge_score=float(right[i]),
            cloud_score=1.0,
        )
        for i in range(rows)
    ]
    data = Labelled.of(table)
    test = held_out(data.rows, 0.3, salt="split", by_group=folds == "group")
    return Table("synthetic", data, likelihood, hidden, test, folds)


@pytest.mark.parametrize(
    ("signal", "folds", "found_by"),
    [
        ("likelihood", "random", {"tfidf+shape+likelihood"}),
        ("hidden", "group", {"hidden-linear", "hidden-knn"}),
    ],
)
def test_cross_validation_finds_the_planted_reading(
    signal: str, folds: str, found_by: set[str]
) -> None:
    table = _table(300, signal, folds)
    figures = cross_validate(table, VARIANTS, seeds=[0])
    assert all(found["rows"] == (~table.test).sum() for found in figures.values())
    assert figures["tfidf+shape"]["auroc"] < 0.65
    for variant in found_by:
        assert figures[variant]["auroc"] > 0.85, variant
    chosen = best_variant(figures)
    assert chosen in found_by
    scored = score_test_rows(table, ["tfidf+shape", chosen])
    assert scored[chosen]["rows"] == table.test.sum()
    assert scored[chosen]["auroc"] > 0.85


def test_scores_come_from_the_training_rows_only() -> None:
    table = _table(120, "hidden", "random")
    train, test = np.flatnonzero(~table.test), np.flatnonzero(table.test)
    before = variant_scores("hidden-knn", table, train, test)
    # Changing the test rows' labels changes nothing that was fitted.
    flipped = Table(
        table.name,
        Labelled.of(
            [
                row.model_copy(update={"edge_score": 1.0 - row.edge_score})
                if table.test[i] and row.edge_score is not None
                else row
                for i, row in enumerate(table.data.rows)
            ]
        ),
        table.likelihood,
        table.hidden,
        table.test,
        table.folds,
    )
    np.testing.assert_array_equal(before, variant_scores("hidden-knn", flipped, train, test))


def test_readings_are_cached_in_parts_and_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def read_all(reader: object, prompts: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
        calls.append(list(prompts))
        number = np.array([float(prompt) for prompt in prompts])
        return {"likelihood": np.column_stack([number] * 4), "seconds": number}

    monkeypatch.setattr(prompt_reading, "read_all", read_all)
    prompts = [str(i) for i in range(5)]

    def no_reader() -> PromptReader:
        return cast(PromptReader, None)  # read_all is replaced

    assert cached_readings("a/b", prompts, tmp_path, no_reader, only_shard=1) is None
    merged = cached_readings("a/b", prompts, tmp_path, no_reader)
    assert merged is not None
    np.testing.assert_array_equal(merged["seconds"], np.arange(5.0))
    assert merged["likelihood"].shape == (5, 4)
    assert calls == [["1", "3"], ["0", "2", "4"]]
    # Read once: a second call reads the cache only.
    cached_readings("a/b", prompts, tmp_path, no_reader)
    assert len(calls) == 2
