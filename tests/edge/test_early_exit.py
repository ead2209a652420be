"""COLLAPSE and BUDGET exits on the real model."""

from __future__ import annotations

import time

import pytest

from sllm.v1 import common_pb2, edge_pb2
from tests.edge.calls import ask, edge_stub, generate
from tests.fixtures.edge import EdgeWorkerProcess

pytestmark = pytest.mark.slow

STORY = "Write a very long story about a dragon who lives in a mountain."


def test_collapse_stops_at_once_and_asks_to_escalate(edge_server: EdgeWorkerProcess) -> None:
    # A threshold no text can meet (-0.01 nats a token on average) forces COLLAPSE as soon
    # as the window is full, whatever the model writes.
    request = ask(
        STORY,
        max_tokens=200,
        early_exit=edge_pb2.EarlyExit(
            collapse_max_logprob=-0.01, collapse_window=4, collapse_min_tokens=6
        ),
    )
    with edge_stub(edge_server.target) as stub:
        result = generate(stub, request)
    assert result.exit_reason == "EXIT_REASON_COLLAPSE"
    assert result.summary.escalate
    assert result.summary.completion_tokens == 6
    assert result.summary.confidence.min_window_mean_logprob < -0.01
    assert "over the last 4 tokens < -0.01" in result.summary.exit_detail


def test_collapse_fires_with_the_default_thresholds_on_a_rambling_answer(
    edge_server: EdgeWorkerProcess,
) -> None:
    # A StrategyQA question the bundled model cannot answer: step by step, it rambles about
    # Columbus with low confidence (mean logprob about -1.4 over 16 tokens; the default
    # threshold is -1.25) and would run to max_tokens.
    request = ask(
        "Did Christopher Columbus condone multiple deadly sins?",
        answer_format=common_pb2.ANSWER_FORMAT_YES_NO,
        reasoning_mode=common_pb2.REASONING_MODE_STEP_BY_STEP,
        max_tokens=256,
    )
    with edge_stub(edge_server.target) as stub:
        result = generate(stub, request)
    assert result.exit_reason == "EXIT_REASON_COLLAPSE"
    assert result.summary.escalate
    assert "mean logprob" in result.summary.exit_detail
    assert result.summary.completion_tokens < 64


def loop_request(question: str, fmt: int, repeat_tokens: int) -> edge_pb2.EdgeGenerateRequest:
    """Step by step, with SETTLED and the log-probability window switched off, so that
    only the loop test can end the generation early."""
    return ask(
        question,
        answer_format=fmt,
        reasoning_mode=common_pb2.REASONING_MODE_STEP_BY_STEP,
        max_tokens=80,
        early_exit=edge_pb2.EarlyExit(
            settle_min_logprob=1.0, collapse_max_logprob=-100.0,
            collapse_repeat_tokens=repeat_tokens,
        ),
    )


def test_collapse_fires_when_a_line_repeats(edge_server: EdgeWorkerProcess) -> None:
    # Step by step, the small model answers this with a numbered list that repeats one
    # line ("1. The answer is 1.\n2. The answer is 1.\n..."): a confident loop, which no
    # verbatim stretch of tokens sees (the item numbers change).
    question, fmt = "How many legs does a dog have?", common_pb2.ANSWER_FORMAT_NUMBER
    with edge_stub(edge_server.target) as stub:
        unchecked = generate(stub, loop_request(question, fmt, 0))
        looped = generate(stub, loop_request(question, fmt, 8))
    assert unchecked.exit_reason == "EXIT_REASON_LENGTH"
    assert looped.exit_reason == "EXIT_REASON_COLLAPSE"
    assert looped.summary.escalate
    assert looped.summary.text == "1. The answer is 1.\n2. The answer is 1.\n"
    assert "the line 'the answer is 1.' repeats an earlier line" in looped.summary.exit_detail


def test_collapse_fires_when_a_stretch_of_tokens_repeats(
    edge_server: EdgeWorkerProcess,
) -> None:
    # Step by step, the model restates its marked answer ('The answer is "yes" to the
    # question.') under a new heading: the stretch of 8 tokens repeats verbatim.
    question = "Are coopers required in the beverage industry?"
    fmt = common_pb2.ANSWER_FORMAT_YES_NO
    with edge_stub(edge_server.target) as stub:
        unchecked = generate(stub, loop_request(question, fmt, 0))
        looped = generate(stub, loop_request(question, fmt, 8))
    assert looped.exit_reason == "EXIT_REASON_COLLAPSE"
    assert looped.summary.escalate
    assert "the last 8 tokens repeat earlier text verbatim" in looped.summary.exit_detail
    assert looped.summary.completion_tokens < unchecked.summary.completion_tokens
    # The loop was real: the text before the cut already holds its last 8 tokens' text.
    pieces = [delta.text for delta in looped.deltas]
    assert "".join(pieces[-8:]) in "".join(pieces[:-8])


def test_collapse_is_off_when_early_exit_is_disabled(edge_server: EdgeWorkerProcess) -> None:
    request = ask(
        STORY,
        max_tokens=20,
        early_exit=edge_pb2.EarlyExit(
            disabled=True, collapse_max_logprob=-0.01, collapse_window=4, collapse_min_tokens=6
        ),
    )
    with edge_stub(edge_server.target) as stub:
        result = generate(stub, request)
    assert result.exit_reason == "EXIT_REASON_LENGTH"
    assert result.summary.completion_tokens == 20
    assert not result.summary.escalate


def test_budget_exit_respects_the_time_budget(edge_server: EdgeWorkerProcess) -> None:
    budget_ms = 2000
    request = ask(
        STORY,
        max_tokens=2000,
        time_budget_ms=budget_ms,
        early_exit=edge_pb2.EarlyExit(disabled=True),
    )
    with edge_stub(edge_server.target) as stub:
        started = time.perf_counter()
        result = generate(stub, request)
        elapsed_ms = (time.perf_counter() - started) * 1000
    assert result.exit_reason == "EXIT_REASON_BUDGET"
    assert 0 < result.summary.completion_tokens < 2000
    assert result.summary.text  # what exists is returned
    # The worker stops within one token of the budget; the margin covers a shared CPU.
    assert result.summary.timings.total_ms < budget_ms + 1000
    assert elapsed_ms < budget_ms + 3000


def test_grpc_deadline_is_a_budget_too(edge_server: EdgeWorkerProcess) -> None:
    # The caller's deadline ends the call; the worker must stop then too, so the next
    # request finds the model free at once.
    with edge_stub(edge_server.target) as stub:
        with pytest.raises(Exception) as raised:
            generate(stub, ask(STORY, max_tokens=2000, early_exit=edge_pb2.EarlyExit(
                disabled=True)), timeout=0.5)
        assert "DEADLINE_EXCEEDED" in str(raised.value)
        after = generate(stub, ask("What is 2 + 3?", max_tokens=8))
    # Had the expired generation kept the model, this one would have waited for ~2000
    # tokens (tens of seconds); the margin covers one token or prompt chunk on a busy CPU.
    assert after.summary.timings.queue_ms < 3000
    assert after.summary.exit_reason != common_pb2.EXIT_REASON_UNSPECIFIED


def test_budget_interrupts_a_long_prefill(edge_server: EdgeWorkerProcess) -> None:
    # The budget is checked between chunks of the prompt: a call whose budget ends while
    # the model reads a long prompt returns long before the whole prompt is read.
    # The two prompts differ from their first word, so the second cannot reuse the first
    # from the KV cache.
    text = "the cat sat on the mat and " * 260
    with edge_stub(edge_server.target) as stub:
        whole = generate(stub, ask("Repeat after me: " + text, max_tokens=1))
        cut = generate(stub, ask("Say after me: " + text, max_tokens=16, time_budget_ms=300))
    assert cut.summary.prompt_tokens > 1500
    assert cut.exit_reason == "EXIT_REASON_BUDGET"
    assert cut.summary.completion_tokens == 0
    assert cut.summary.timings.total_ms < whole.summary.timings.prefill_ms / 2
