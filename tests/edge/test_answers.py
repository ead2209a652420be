"""Answer extraction and matching (sllm/answers.py), and the same through the worker."""

from __future__ import annotations

import pytest

from sllm.answers import (
    AnswerFormat,
    answers_match,
    extract_answer,
    find_answer,
    normalize_number,
)
from sllm.v1 import common_pb2
from tests.edge.calls import ask, edge_stub, generate
from tests.fixtures.edge import EdgeWorkerProcess

NUMBER, LETTER, YES_NO, FREE = (
    AnswerFormat.NUMBER,
    AnswerFormat.CHOICE_LETTER,
    AnswerFormat.YES_NO,
    AnswerFormat.FREE_TEXT,
)


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("Answer: 42", NUMBER, "42"),
        ("She has 3 + 4 = 7 apples.\nAnswer: 7", NUMBER, "7"),
        ("3 + 4 = 7, so the answer is 7.", NUMBER, "7"),
        ("The total is $1,250.50 in all.", NUMBER, "1250.5"),
        ("Natalia sold 48/2 = 24 clips.\n#### 72", NUMBER, "72"),
        ("It drops to -3 degrees", NUMBER, "-3"),
        ("Answer: 5.0", NUMBER, "5"),
        ("Answer: 200 * 100 = 20000\nThen 5 more", NUMBER, "20000"),
        ("The answer is 8 inches. Then 3 more", NUMBER, "8"),
        ("no digits here", NUMBER, None),
        ("Answer: (C)", LETTER, "C"),
        ("The answer is B) blue.", LETTER, "B"),
        ("B) apple", LETTER, "B"),
        ("Answer: a", LETTER, None),
        ("A cat sat.", LETTER, None),  # the article is no choice
        ("Yes, it is.", YES_NO, "yes"),
        ("Answer: No", YES_NO, "no"),
        ("Answer: true", YES_NO, "yes"),
        ("Maybe, who knows", YES_NO, None),
        ("Answer: Paris\nIt is in France.", FREE, "Paris"),
        ("Answer: Paris. It is in France.", FREE, "Paris"),
        ("Answer: Lyndon B. Johnson. He was", FREE, "Lyndon B. Johnson"),  # an initial
        ("Answer: the USA. Then more", FREE, "the USA"),
        ("  The Eiffel Tower  ", FREE, "The Eiffel Tower"),
        ("", FREE, None),
    ],
)
def test_extract_answer(text: str, fmt: AnswerFormat, expected: str | None) -> None:
    assert extract_answer(text, fmt) == expected


@pytest.mark.parametrize(
    ("text", "complete"),
    [
        ("Answer: 1", False),
        ("Answer: 12.", False),
        ("Answer: 12.5", False),
        ("Answer: 3 + 4", False),
        ("Answer: 12 apples", False),
        ("Answer: 12\n", True),
        ("Answer: 12. ", True),
        ("The answer is 8 inches.\n", True),
    ],
)
def test_a_marked_number_is_complete_once_its_sentence_ends(text: str, complete: bool) -> None:
    span = find_answer(text, NUMBER, marked_only=True)
    assert span is not None
    assert span.complete is complete


def test_settling_needs_a_marked_answer() -> None:
    assert find_answer("First 3 apples, then 4 more.", NUMBER, marked_only=True) is None
    assert find_answer("Answer: 4\n", YES_NO, marked_only=True) is None


@pytest.mark.parametrize(
    ("predicted", "gold", "fmt", "match"),
    [
        ("72", "72", NUMBER, True),
        ("72", "1,072", NUMBER, False),
        ("1000", "1,000", NUMBER, True),
        ("3.5", "3.50", NUMBER, True),
        ("b", "B", LETTER, True),
        ("yes", "True", YES_NO, True),
        ("no", "true", YES_NO, False),
        ("The Paris, France", ["paris", "lyon"], FREE, True),
        ("Parisian", "paris", FREE, False),
        ("A+", "A+", FREE, True),  # nothing left once articles and punctuation go
        ("B", "A+", FREE, False),
        ("anything", "a", FREE, False),
        (None, "72", NUMBER, False),
        ("seven", "7", NUMBER, False),
    ],
)
def test_answers_match(
    predicted: str | None, gold: str | list[str], fmt: AnswerFormat, match: bool
) -> None:
    assert answers_match(predicted, gold, fmt) is match


def test_format_may_be_given_by_name() -> None:
    assert extract_answer("Answer: 9", "NUMBER") == "9"
    assert answers_match("9", "9", "NUMBER")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "fmt", "allowed"),
    [
        ("What is 2 + 3?", common_pb2.ANSWER_FORMAT_NUMBER, None),
        ("Can fish swim?", common_pb2.ANSWER_FORMAT_YES_NO, {"yes", "no"}),
        (
            "Which is a fruit? A) car B) apple C) shoe",
            common_pb2.ANSWER_FORMAT_CHOICE_LETTER,
            {"A", "B", "C"},
        ),
        ("What is the capital of France?", common_pb2.ANSWER_FORMAT_FREE_TEXT, None),
    ],
)
def test_worker_extracts_the_answer_in_the_requested_format(
    edge_server: EdgeWorkerProcess, question: str, fmt: int, allowed: set[str] | None
) -> None:
    with edge_stub(edge_server.target) as stub:
        summary = generate(stub, ask(question, answer_format=fmt, max_tokens=48)).summary
    assert summary.answer_found
    name = AnswerFormat(common_pb2.AnswerFormat.Name(fmt).removeprefix("ANSWER_FORMAT_"))
    # The worker's answer is what the shared extractor finds in its reply (DIRECT mode
    # primes structured formats with "Answer:").
    primer = "" if name is FREE else "Answer:"
    assert summary.final_answer == extract_answer(primer + summary.text, name)
    if allowed is not None:
        assert summary.final_answer in allowed
    if name is NUMBER:  # whether it is right is the benchmark's business, not a test's
        assert normalize_number(summary.final_answer) == summary.final_answer
