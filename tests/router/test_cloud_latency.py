"""The cloud's latency estimate as plain numbers: what each kind of call teaches it."""

from __future__ import annotations

import pytest

from router.estimators import CloudLatency


def fresh() -> CloudLatency:
    # 500 ms to the first token, then 20 ms a token: 10 tokens are 700 ms.
    return CloudLatency(ttft_ms=500.0, ms_per_token=20.0)


def test_a_streamed_call_teaches_both_the_first_token_and_the_rate() -> None:
    latency = fresh()
    # First token at 300 ms, then 9 more tokens in 90 ms: 10 ms a token.
    latency.observe(latency_ms=390.0, ttft_ms=300.0, completion_tokens=10)
    # Each moves a fifth of the way: ttft 500 -> 460, rate 20 -> 18.
    assert latency.estimate_ms(10) == pytest.approx(460.0 + 10 * 18.0)


def test_a_non_streamed_call_takes_its_further_tokens_off_at_the_current_rate() -> None:
    latency = fresh()
    # 11 tokens in 400 ms: 10 further tokens at 20 ms leave 200 ms for the first token.
    latency.observe(latency_ms=400.0, ttft_ms=None, completion_tokens=11)
    # ttft 500 -> 440; the rate, not seen, stays at 20.
    assert latency.estimate_ms(10) == pytest.approx(440.0 + 10 * 20.0)


def test_a_non_streamed_call_faster_than_the_rate_allows_teaches_a_first_token_at_zero() -> None:
    latency = fresh()
    # 51 tokens in 100 ms: at 20 ms a token the rest alone would take 1,000 ms.
    latency.observe(latency_ms=100.0, ttft_ms=None, completion_tokens=51)
    assert latency.estimate_ms(0) == pytest.approx(400.0)  # 500 -> 400, not below
    assert latency.estimate_ms(1) - latency.estimate_ms(0) == pytest.approx(20.0)


@pytest.mark.parametrize("tokens", [0, 1])
def test_a_non_streamed_answer_of_at_most_one_token_is_all_first_token(tokens: int) -> None:
    latency = fresh()
    latency.observe(latency_ms=250.0, ttft_ms=None, completion_tokens=tokens)
    assert latency.estimate_ms(0) == pytest.approx(450.0)
