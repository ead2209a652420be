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


def unary_calls(latency: CloudLatency, *, ttft_ms: float, ms_per_token: float, n: int) -> None:
    """`n` non-streamed calls of a cloud with these figures, of 5 to 80 tokens."""
    for i in range(n):
        tokens = (5, 20, 50, 80)[i % 4]
        latency.observe(
            latency_ms=ttft_ms + (tokens - 1) * ms_per_token, ttft_ms=None, completion_tokens=tokens
        )


def test_non_streamed_calls_of_different_lengths_teach_the_rate_and_the_first_token() -> None:
    latency = fresh()  # the prior: 500 ms, then 20 ms a token
    unary_calls(latency, ttft_ms=300.0, ms_per_token=25.0, n=60)
    assert latency.estimate_ms(0) == pytest.approx(300.0, abs=1.0)
    assert latency.estimate_ms(101) - latency.estimate_ms(1) == pytest.approx(2500.0, abs=10.0)


def test_non_streamed_calls_follow_a_cloud_that_slows_down() -> None:
    latency = fresh()
    unary_calls(latency, ttft_ms=300.0, ms_per_token=25.0, n=60)
    unary_calls(latency, ttft_ms=300.0, ms_per_token=50.0, n=100)
    assert latency.estimate_ms(1) - latency.estimate_ms(0) == pytest.approx(50.0, abs=1.0)
    # What is left of the old rate in the fit (a few percent) shows in the first token.
    assert latency.estimate_ms(0) == pytest.approx(300.0, abs=15.0)


def test_non_streamed_calls_of_one_length_teach_no_rate() -> None:
    latency = fresh()
    for _ in range(50):
        latency.observe(latency_ms=1000.0, ttft_ms=None, completion_tokens=21)
    # No slope to see: the rate stays at 20 ms and the first token takes the rest.
    assert latency.estimate_ms(1) - latency.estimate_ms(0) == pytest.approx(20.0)
    assert latency.estimate_ms(20) == pytest.approx(1000.0, abs=1.0)


def test_a_few_non_streamed_calls_teach_no_rate() -> None:
    latency = fresh()
    unary_calls(latency, ttft_ms=300.0, ms_per_token=25.0, n=4)
    assert latency.estimate_ms(1) - latency.estimate_ms(0) == pytest.approx(20.0)


def test_non_streamed_calls_whose_latency_falls_with_length_teach_no_rate() -> None:
    latency = fresh()
    for i in range(40):
        tokens = (5, 20, 50, 80)[i % 4]
        latency.observe(latency_ms=2000.0 - tokens, ttft_ms=None, completion_tokens=tokens)
    assert latency.estimate_ms(1) - latency.estimate_ms(0) == pytest.approx(20.0)


def test_non_streamed_calls_with_noisy_latencies_teach_a_rate_near_the_true_one() -> None:
    latency = fresh()
    noise = (30.0, -30.0, 10.0, -10.0, 0.0, 25.0, -25.0)
    for i in range(140):
        tokens = (5, 20, 50, 80, 35)[i % 5]
        latency.observe(
            latency_ms=300.0 + (tokens - 1) * 25.0 + noise[i % 7],
            ttft_ms=None,
            completion_tokens=tokens,
        )
    assert latency.estimate_ms(1) - latency.estimate_ms(0) == pytest.approx(25.0, rel=0.05)
    assert latency.estimate_ms(0) == pytest.approx(300.0, abs=30.0)
