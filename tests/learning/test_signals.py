"""The signals the cascade model reads: from the edge's summary and from the answer text."""

from __future__ import annotations

import math

import pytest

from router.signals import EDGE_SIGNAL_NAMES, EdgeSignals, answer_text_features, signal_vector
from sllm.v1 import common_pb2, edge_pb2


def test_from_summary_reads_every_field_of_the_edge_summary() -> None:
    summary = edge_pb2.EdgeSummary(
        completion_tokens=17,
        answer_found=True,
        exit_reason=common_pb2.EXIT_REASON_COLLAPSE,
        confidence=common_pb2.Confidence(
            mean_logprob=-1.5,
            min_logprob=-6.0,
            mean_entropy=2.0,
            max_entropy=4.5,
            answer_mean_logprob=-0.25,
            min_window_mean_logprob=-3.0,
            score=0.75,
        ),
    )
    signals = EdgeSignals.from_summary(summary)
    assert signals == EdgeSignals(
        mean_logprob=-1.5,
        min_logprob=-6.0,
        mean_entropy=2.0,
        max_entropy=4.5,
        answer_mean_logprob=-0.25,
        min_window_mean_logprob=-3.0,
        confidence_score=0.75,
        completion_tokens=17,
        answer_found=True,
        exit_reason="COLLAPSE",
    )
    vector = signals.as_vector(
        ["mean_logprob", "exit_COLLAPSE", "exit_SETTLED", "log_completion_tokens", "answer_found"]
    )
    assert vector.tolist() == pytest.approx([-1.5, 1.0, 0.0, math.log(18), 1.0])
    assert len(signals.as_vector(EDGE_SIGNAL_NAMES)) == len(EDGE_SIGNAL_NAMES)


def test_unspecified_exit_reason_reads_as_none() -> None:
    assert EdgeSignals.from_summary(edge_pb2.EdgeSummary()).exit_reason == ""
    assert EdgeSignals.from_mapping({"exit_reason": "NEW_REASON"}).exit_reason == ""


def test_unknown_signal_name_is_an_error() -> None:
    with pytest.raises(KeyError, match="no_such_signal"):
        EdgeSignals().value("no_such_signal")


QUERY = "Tom has 16 apples and gives away 3. He buys 4 more. How many now?"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            "16 - 3 = <<16-3=13>>13, 13 + 4 = <<13+4=17>>17\n#### 17",
            {
                "text_log_checked": math.log(5),
                "text_wrong_calculations": 0.0,
                "text_final_marker": 1.0,
                "text_finished": 1.0,
                "text_query_numbers_used": 1.0,
                "text_final_in_query": 0.0,
            },
        ),
        (
            "16 - 3 = <<16-3=12>>12, 12 + 4 = 16\n#### 16",
            {
                "text_wrong_calculations": 2.0,
                "text_any_wrong_calculation": 1.0,
                "text_final_in_query": 1.0,
            },
        ),
        (
            "Tom starts with 16 apples. He gives away 3, so he has 16 - 3 = <<16-3=13>>1",
            {"text_final_marker": 0.0, "text_finished": 0.0, "text_query_numbers_used": 2 / 3},
        ),
        ("", {"text_empty": 1.0, "text_has_number": 0.0, "text_log_chars": 0.0}),
        (
            "I think it is approximately 17.5, but I am not sure?",
            {
                "text_final_is_integer": 0.0,
                "text_hedges": math.log(3),
                "text_questions": math.log(2),
            },
        ),
        # too long for a float: read as no number, not as infinity
        ("9" * 400, {"text_has_number": 0.0, "text_final_is_integer": 0.0}),
    ],
)
def test_answer_text_features(answer: str, expected: dict[str, float]) -> None:
    features = answer_text_features(QUERY, answer)
    assert {name: features[name] for name in expected} == pytest.approx(expected)


def test_signal_vector_mixes_edge_and_text_signals_in_the_policy_order() -> None:
    edge = EdgeSignals(mean_logprob=-0.5, exit_reason="SETTLED")
    names = ["text_final_marker", "mean_logprob", "exit_SETTLED"]
    assert signal_vector(names, query=QUERY, answer="#### 17", edge=edge).tolist() == [
        1.0,
        -0.5,
        1.0,
    ]
    # recorded data without the edge's statistics: those read 0
    assert signal_vector(names, query=QUERY, answer="17", edge=None).tolist() == [0, 0, 0]


def test_non_finite_edge_statistics_give_finite_signals() -> None:
    edge = EdgeSignals(
        mean_logprob=float("-inf"), min_logprob=float("nan"), max_entropy=float("inf")
    )
    vector = signal_vector(
        ["mean_logprob", "min_logprob", "max_entropy"], query="q", answer="a", edge=edge
    )
    assert vector.tolist() == [-100.0, 0.0, 100.0]
