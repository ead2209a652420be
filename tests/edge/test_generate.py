"""Generate on the real bundled model: streaming, summary, answers, early exits."""

from __future__ import annotations

import pytest

from sllm.v1 import common_pb2, edge_pb2
from tests.edge.calls import ask, edge_stub, generate
from tests.fixtures.edge import EdgeWorkerProcess

pytestmark = pytest.mark.slow


def test_stream_of_deltas_ends_with_a_summary_that_adds_up(edge_server: EdgeWorkerProcess) -> None:
    with edge_stub(edge_server.target) as stub:
        request = ask("What is 2 + 3?", answer_format=common_pb2.ANSWER_FORMAT_NUMBER)
        result = generate(stub, request)
    summary = result.summary
    assert "".join(delta.text for delta in result.deltas) == summary.text
    assert [delta.index for delta in result.deltas] == list(range(len(result.deltas)))
    assert summary.completion_tokens == len(result.deltas)
    assert summary.prompt_tokens > 0
    assert all(delta.logprob <= 0 and delta.entropy >= 0 for delta in result.deltas)
    assert 0 < summary.confidence.score <= 1
    assert summary.timings.total_ms >= summary.timings.decode_ms > 0
    assert summary.model
    assert summary.reasoning_mode == common_pb2.REASONING_MODE_DIRECT


def test_settled_exit_stops_once_the_answer_is_complete(edge_server: EdgeWorkerProcess) -> None:
    # Step by step, the small model marks its answer on a line of its own ('The answer is
    # "yes"'), then writes 40 more tokens restating it. A permissive threshold makes
    # SETTLED depend on the format rule only.
    def request(early_exit: edge_pb2.EarlyExit) -> edge_pb2.EdgeGenerateRequest:
        return ask(
            "Are coopers required in the beverage industry?",
            answer_format=common_pb2.ANSWER_FORMAT_YES_NO,
            reasoning_mode=common_pb2.REASONING_MODE_STEP_BY_STEP,
            max_tokens=120,
            early_exit=early_exit,
        )

    with edge_stub(edge_server.target) as stub:
        full = generate(stub, request(edge_pb2.EarlyExit(disabled=True)))
        settled = generate(stub, request(edge_pb2.EarlyExit(settle_min_logprob=-5.0)))
    assert full.exit_reason == "EXIT_REASON_STOP"
    assert settled.exit_reason == "EXIT_REASON_SETTLED"
    assert settled.summary.completion_tokens < full.summary.completion_tokens - 20
    # Greedy decoding: the settled text is where the full one would have gone, cut right
    # after the answer (no trailing chatter).
    assert full.summary.text.startswith(settled.summary.text)
    assert settled.summary.answer_found
    assert settled.summary.final_answer == full.summary.final_answer == "yes"
    assert settled.summary.text.rstrip('".\n ').endswith("yes")
    assert not settled.summary.escalate


def test_an_answer_in_a_list_item_does_not_settle(edge_server: EdgeWorkerProcess) -> None:
    # Step by step, the model answers this with a numbered list ("1. The answer is 1.\n2.
    # The answer is 1.\n..."): an answer marked in a list item is one step, which the next
    # item may contradict, so SETTLED waits for an answer line outside a list. Only
    # SETTLED is on here; it never fires, and the list runs to max_tokens.
    request = ask(
        "How many legs does a dog have?",
        answer_format=common_pb2.ANSWER_FORMAT_NUMBER,
        reasoning_mode=common_pb2.REASONING_MODE_STEP_BY_STEP,
        max_tokens=80,
        early_exit=edge_pb2.EarlyExit(
            settle_min_logprob=-5.0, collapse_max_logprob=-100.0, collapse_repeat_tokens=0
        ),
    )
    with edge_stub(edge_server.target) as stub:
        result = generate(stub, request)
    assert result.summary.text.startswith("1. The answer is 1.\n2. The answer is 1.")
    assert result.exit_reason == "EXIT_REASON_LENGTH"
    assert result.summary.final_answer == "1"


def test_info_reports_the_model_and_measured_speed(edge_server: EdgeWorkerProcess) -> None:
    with edge_stub(edge_server.target) as stub:
        info = stub.Info(edge_pb2.EdgeInfoRequest(), timeout=10)
    assert info.model_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert info.context_size == 2048
    assert info.prefill_tokens_per_s > 0
    assert info.decode_tokens_per_s > 0
    assert info.queue_capacity == 8


def test_a_prompt_read_from_the_cache_gives_the_same_answer(
    edge_server: EdgeWorkerProcess,
) -> None:
    # The second call finds its whole prompt in the KV cache (only the last token is read
    # again); the third shares only the chat template. All must decode as if fresh.
    first_question = ask("Name three colors.", max_tokens=24)
    other_question = ask("Name three animals.", max_tokens=24)
    with edge_stub(edge_server.target) as stub:
        first = generate(stub, first_question)
        cached = generate(stub, first_question)
        generate(stub, other_question)
        again = generate(stub, first_question)
    assert cached.summary.text == first.summary.text == again.summary.text
    assert [round(d.logprob, 2) for d in cached.deltas] == [
        round(d.logprob, 2) for d in first.deltas
    ]
