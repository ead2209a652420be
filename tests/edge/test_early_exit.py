"""COLLAPSE and BUDGET exits on the real model, as behaviour: what the model writes
depends on the llama.cpp build, so these tests check that an exit is what its rule says
(the repetition a loop exit names is in the text, a window exit's mean is below the
threshold), never which words came; test_exit_rules.py checks each rule exactly."""

from __future__ import annotations

import ast
import re
import time

import pytest

from sllm.settings import EarlyExitDefaults
from sllm.v1 import common_pb2, edge_pb2
from tests.edge.calls import Generated, ask, edge_stub, generate
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


_WINDOW_DETAIL = re.compile(r"mean logprob (-?[\d.]+) over the last (\d+) tokens < (-?[\d.]+)")
_LINE_DETAIL = re.compile(r"the line (.+) repeats an earlier line")
_STRETCH_DETAIL = re.compile(r"the last (\d+) tokens repeat earlier text verbatim")
# A list item's opening, as the loop rule strips it ("2.", "3)", "- ", "Step 4:").
_LIST_ITEM = re.compile(r"\s*(?:\d+[.)]|[-*\u2022]|step\s*\d+\s*:)", re.IGNORECASE)


def _finished_lines(text: str) -> list[str]:
    """The text's finished lines as the loop rule compares them: list numbers off, lower
    case, words single-spaced."""
    found = []
    for line in text.split("\n")[:-1]:
        item = _LIST_ITEM.match(line)
        found.append(" ".join(line[item.end() if item else 0 :].lower().split()))
    return found


def assert_collapse_explained(result: Generated) -> None:
    """A COLLAPSE exit is what its detail says: the window's mean was below the threshold,
    or the text repeats what the detail says it repeats."""
    summary = result.summary
    assert result.exit_reason == "EXIT_REASON_COLLAPSE"
    assert summary.escalate
    detail = summary.exit_detail
    if window := _WINDOW_DETAIL.fullmatch(detail):
        mean, size, threshold = float(window[1]), int(window[2]), float(window[3])
        assert mean < threshold
        # The detail rounds to 2 decimals; the deltas carry 32-bit floats.
        assert summary.confidence.min_window_mean_logprob <= mean + 0.006
        last = [d.logprob for d in result.deltas[-size:]]
        assert sum(last) / len(last) == pytest.approx(mean, abs=0.006)
    elif line := _LINE_DETAIL.fullmatch(detail):
        repeated = ast.literal_eval(line[1])
        assert _finished_lines(summary.text).count(repeated) == 2, summary.text
    elif stretch := _STRETCH_DETAIL.fullmatch(detail):
        size = int(stretch[1])
        # The last `size` tokens, token for token, started earlier too (maybe overlapping).
        pieces = [d.text for d in result.deltas]
        last = pieces[-size:]
        assert any(pieces[i : i + size] == last for i in range(len(pieces) - size)), pieces
    else:
        pytest.fail(f"a COLLAPSE detail no rule words so: {detail!r}")


def test_collapse_with_the_default_thresholds_is_explained_by_its_rule(
    edge_server: EdgeWorkerProcess,
) -> None:
    # A StrategyQA question the bundled model cannot answer: step by step, it rambles with
    # low confidence. Whichever rule ends it on this llama.cpp build, the exit must be the
    # rule's: a COLLAPSE explained by its window or its loop, else an answer or the end.
    request = ask(
        "Did Christopher Columbus condone multiple deadly sins?",
        answer_format=common_pb2.ANSWER_FORMAT_YES_NO,
        reasoning_mode=common_pb2.REASONING_MODE_STEP_BY_STEP,
        max_tokens=256,
    )
    with edge_stub(edge_server.target) as stub:
        result = generate(stub, request)
    summary, defaults = result.summary, EarlyExitDefaults()
    if result.exit_reason == "EXIT_REASON_COLLAPSE":
        assert_collapse_explained(result)
        if "mean logprob" in summary.exit_detail:
            assert summary.completion_tokens >= defaults.collapse_min_tokens
            assert f"over the last {defaults.collapse_window} tokens" in summary.exit_detail
    elif result.exit_reason == "EXIT_REASON_SETTLED":
        assert summary.answer_found and summary.final_answer in {"yes", "no"}
    elif result.exit_reason == "EXIT_REASON_LENGTH":
        assert summary.completion_tokens == 256
    else:
        assert result.exit_reason == "EXIT_REASON_STOP"
    # Every window the rule saw stayed at or above the threshold, unless it fired.
    if result.exit_reason != "EXIT_REASON_COLLAPSE" and summary.completion_tokens >= 32:
        assert summary.confidence.min_window_mean_logprob >= defaults.collapse_max_logprob


def loop_request(text: str, repeat_tokens: int) -> edge_pb2.EdgeGenerateRequest:
    """Asks the model to copy `text`, with SETTLED and the log-probability window off, so
    that only the loop rule can end the copy early. Copying is what any language model
    does most reliably, whichever llama.cpp build runs it."""
    return ask(
        f"Copy this text:\n{text}",
        max_tokens=80,
        early_exit=edge_pb2.EarlyExit(
            settle_min_logprob=1.0,
            collapse_max_logprob=-100.0,
            collapse_repeat_tokens=repeat_tokens,
        ),
    )


def test_collapse_fires_when_the_model_repeats_a_line(edge_server: EdgeWorkerProcess) -> None:
    # A copy of the same line four times: COLLAPSE once it is written again (by the line
    # rule, or the stretch rule: a line is about 8 tokens), and the text holds what the
    # detail names. Left alone, the copy runs longer.
    text = "\n".join(["The dog ran to the park."] * 4)
    with edge_stub(edge_server.target) as stub:
        unchecked = generate(stub, loop_request(text, 0))
        looped = generate(stub, loop_request(text, 8))
    assert_collapse_explained(looped)
    assert "repeat" in looped.summary.exit_detail  # a loop rule, the only ones on
    assert unchecked.exit_reason in ("EXIT_REASON_LENGTH", "EXIT_REASON_STOP")
    assert unchecked.summary.completion_tokens > looped.summary.completion_tokens


def test_collapse_fires_when_a_stretch_of_tokens_repeats(
    edge_server: EdgeWorkerProcess,
) -> None:
    # The same sentence four times on one line: no line ends, the stretch rule sees it.
    text = " ".join(["The cat sat on the mat."] * 4)
    with edge_stub(edge_server.target) as stub:
        unchecked = generate(stub, loop_request(text, 0))
        looped = generate(stub, loop_request(text, 8))
    assert_collapse_explained(looped)
    assert looped.summary.exit_detail == "the last 8 tokens repeat earlier text verbatim"
    assert unchecked.summary.completion_tokens > looped.summary.completion_tokens


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
            generate(
                stub,
                ask(STORY, max_tokens=2000, early_exit=edge_pb2.EarlyExit(disabled=True)),
                timeout=0.5,
            )
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
