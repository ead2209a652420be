"""Judges: structured answers matched against a reference; free text by a real cloud."""

from __future__ import annotations

import pytest

from cloud_adapter import CloudClient
from router.learning.judge import Judge
from sllm.settings import CloudSettings
from tests.fixtures.cloud import StandInServer, free_port


@pytest.mark.parametrize(
    ("answer", "reference", "answer_format", "reference_is_gold", "expected"),
    [
        ("So she makes 9 * 2 = 18 dollars.\nAnswer: 18", "18", "NUMBER", True, 1.0),
        ("Answer: 1,800", "1800.0", "NUMBER", True, 1.0),
        ("Answer: 17", "18", "NUMBER", True, 0.0),
        ("I cannot tell.", "18", "NUMBER", True, 0.0),
        ("The answer is (B).", "The answer is B) 64", "CHOICE_LETTER", False, 1.0),
        ("Answer: C", "B", "CHOICE_LETTER", True, 0.0),
        ("Yes, it is.", "yes", "YES_NO", True, 1.0),
        ("No.", "Answer: yes", "YES_NO", False, 0.0),
        ("It was Rihanna.", ["Rihanna", "Selena Gomez"], "FREE_TEXT", True, 1.0),
        ("It was Beyonce.", ["Rihanna"], "FREE_TEXT", True, 0.0),
    ],
)
async def test_structured_answers_are_matched(
    answer: str,
    reference: str | list[str],
    answer_format: str,
    reference_is_gold: bool,
    expected: float,
) -> None:
    score = await Judge().score(
        question="q",
        answer=answer,
        reference=reference,
        answer_format=answer_format,
        reference_is_gold=reference_is_gold,
    )
    assert score == expected


async def test_a_reference_without_an_answer_gives_no_label() -> None:
    # a shadow reply in which no yes/no can be found cannot label the edge's answer
    assert (
        await Judge().score(
            question="q",
            answer="yes",
            reference="It depends.",
            answer_format="YES_NO",
            reference_is_gold=False,
        )
        is None
    )


@pytest.mark.slow
async def test_free_text_is_judged_by_the_cloud(standin_server: StandInServer) -> None:
    client = CloudClient(standin_server.settings())
    mark = standin_server.access_log.mark()
    try:
        score = await Judge(client, timeout_s=120).score(
            question="What is the capital of France?",
            answer="Paris is the capital.",
            reference="Paris",
            answer_format="FREE_TEXT",
        )
    finally:
        await client.aclose()
    # The stand-in is a 135M model: its verdict is no oracle, but a verdict it is (or
    # None when its reply holds no yes/no), and the question went to the cloud.
    assert score in (0.0, 1.0, None)
    # one request, or more when the shared machine made the adapter retry
    assert standin_server.access_log.completions(since=mark)


async def test_a_cloud_judge_that_is_down_gives_no_label_and_no_error() -> None:
    client = CloudClient(
        CloudSettings(
            base_url=f"http://127.0.0.1:{free_port()}/v1", max_attempts=1, connect_timeout_s=0.5
        )
    )
    try:
        score = await Judge(client, timeout_s=5).score(
            question="Who wrote Hamlet?",
            answer="Shakespeare",
            reference="William Shakespeare",
            answer_format="FREE_TEXT",
        )
    finally:
        await client.aclose()
    assert score is None
