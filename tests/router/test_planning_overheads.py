"""The plan keeps the router's own time and the edge's prefill of the actual prompt out of
what the tiers may use, so that an answer arrives inside its budget: plain numbers."""

from __future__ import annotations

import dataclasses

import pytest

from router.estimators import EdgeLatency, RouterOverhead
from router.policy import NoRoute, plan
from tests.router.test_policy import QUERY, SITUATION

# The edge: 100 ms before its first token, 10 ms a token; the cloud's 5 s never fits.
EDGE_ONLY_TIME = dataclasses.replace(SITUATION, est_cloud_ms=5_000.0)


def test_the_token_cap_fits_the_budget_less_the_router_overheads() -> None:
    # 400 ms, 30 ms of them the router's: 370 - 100 leaves 27 tokens (not 30).
    decided = plan(QUERY, dataclasses.replace(EDGE_ONLY_TIME, remaining_ms=400.0, overhead_ms=30.0))
    assert (decided.first, decided.edge_max_tokens) == ("EDGE", 27)
    # The edge stops one token before the time left, since it may finish one past it.
    assert decided.edge_time_budget_ms == pytest.approx(370.0 - 10.0)


def test_overheads_that_leave_no_first_token_refuse_with_the_budget_that_would_do() -> None:
    # 120 ms would fit the edge's first token (110 ms), not with 30 ms of overheads.
    with pytest.raises(NoRoute) as refused:
        plan(
            QUERY,
            dataclasses.replace(
                EDGE_ONLY_TIME, remaining_ms=120.0, overhead_ms=30.0, reply_margin_ms=5.0
            ),
        )
    assert refused.value.failure == "deadline"
    assert "a latency budget of at least 145 ms" in str(refused.value)


def test_overheads_can_keep_the_cloud_out_when_its_estimate_no_longer_fits() -> None:
    # The cloud needs 1 s: it fits 1,010 ms, not 1,010 less 20 ms of overheads.
    roomy = dataclasses.replace(SITUATION, p_edge_ok=0.2, remaining_ms=1_010.0)
    assert plan(QUERY, roomy).first == "CLOUD"
    decided = plan(QUERY, dataclasses.replace(roomy, overhead_ms=20.0))
    assert decided.first == "EDGE"
    assert decided.cloud_blocker is not None
    assert "only 990 ms remain" in decided.cloud_blocker


def test_the_prefill_is_planned_for_the_prompt_the_edge_reads() -> None:
    # 2 ms a prompt token; the router estimates 10 tokens, the edge prefilled 40 (its chat
    # template and instruction): after a few answers the 30 unseen tokens are planned for.
    latency = EdgeLatency(prefill_tokens_per_s=500.0, decode_tokens_per_s=50.0)
    assert latency.estimate(10).overhead_ms == pytest.approx(20.0)
    for _ in range(40):
        latency.observe(
            queue_ms=0.0,
            prefill_ms=80.0,
            decode_ms=200.0,
            prompt_tokens=40,
            completion_tokens=10,
            estimated_prompt_tokens=10,
        )
    assert latency.estimate(10).overhead_ms == pytest.approx(80.0, rel=0.01)
    assert latency.estimate(110).overhead_ms == pytest.approx(280.0, rel=0.01)


def test_the_overhead_reserve_covers_its_spread_not_only_its_mean() -> None:
    overhead = RouterOverhead(initial_ms=2.0)
    for ms in [2.0, 6.0] * 50:
        overhead.observe(ms)
    # Mean about 4 ms, mean deviation about 2 ms: the reserve sits near the worst.
    assert 10.0 <= overhead.reserve_ms() <= 14.0
    for _ in range(100):
        overhead.observe(3.0)
    assert overhead.reserve_ms() == pytest.approx(3.0, abs=0.1)
