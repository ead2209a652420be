"""A latency budget too small for any tier is DEADLINE_EXCEEDED (not UNAVAILABLE), at once,
with the smallest budget that would let a tier answer; that budget then does.

Plain numbers first (`plan`), then through gRPC with a scripted edge whose speed the
router's estimates start from (nothing is observed between the two requests, so the
estimate the message gives is the one the next request is planned with).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import grpc
import pytest

from router.policy import NoRoute, plan
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.router.requests import ask, route_name
from tests.router.test_policy import QUERY, SITUATION

# The edge needs 110 ms for a first token (100 ms before it, 10 ms a token), the cloud 1 s.
TIGHT = dataclasses.replace(SITUATION, remaining_ms=50.0, reply_margin_ms=5.0)
SMALLEST = re.compile(r"a latency budget of at least (\d+) ms would let a tier answer")
TEST_TIMEOUT_S = 30.0


def test_a_budget_too_small_for_both_tiers_names_the_smallest_that_would_work() -> None:
    with pytest.raises(NoRoute) as refused:
        plan(QUERY, TIGHT)
    assert refused.value.failure == "deadline"
    assert "the edge needs about 110 ms for a first token and only 50 ms remain" in str(
        refused.value
    )
    # The edge's 110 ms and the reply's margin.
    assert "a latency budget of at least 115 ms" in str(refused.value)


def test_the_smallest_budget_is_that_of_a_tier_the_query_may_use() -> None:
    with pytest.raises(NoRoute) as refused:
        plan(dataclasses.replace(QUERY, route_hint="CLOUD_ONLY"), TIGHT)
    assert refused.value.failure == "deadline"
    assert "a latency budget of at least 1005 ms" in str(refused.value)


def test_no_tier_for_a_reason_time_cannot_fix_is_unavailable() -> None:
    with pytest.raises(NoRoute) as refused:
        plan(
            dataclasses.replace(QUERY, local_only=True),
            dataclasses.replace(TIGHT, edge_available=False),
        )
    assert refused.value.failure == "unavailable"
    assert not SMALLEST.search(str(refused.value))


def test_an_edge_too_slow_for_the_budget_leaves_the_query_to_the_cloud() -> None:
    decided = plan(QUERY, dataclasses.replace(TIGHT, remaining_ms=2_000.0, p_edge_ok=0.9))
    assert decided.first == "EDGE"
    slow_edge = dataclasses.replace(TIGHT.edge, overhead_ms=5_000.0)
    decided = plan(QUERY, dataclasses.replace(TIGHT, remaining_ms=2_000.0, edge=slow_edge))
    assert (decided.first, decided.other_tier_allowed) == ("CLOUD", False)
    assert decided.why.startswith("the edge needs about 5010 ms for a first token")


async def test_through_grpc_the_refusal_is_deadline_exceeded_and_its_budget_works(
    router_factory: RouterFactory,
) -> None:
    edge = ScriptedEdge()
    async with asyncio.timeout(TEST_TIMEOUT_S):
        router = await router_factory(fake_edge=edge, cloud=closed_cloud(), pre=0.0)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await router.stub.Generate(ask(latency_budget_ms=1))
        assert refused.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        found = SMALLEST.search(refused.value.details() or "")
        assert found, refused.value.details()
        smallest = int(found[1])
        with pytest.raises(grpc.aio.AioRpcError) as still_refused:
            await router.stub.Generate(ask(latency_budget_ms=smallest - 1))
        assert still_refused.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        response = await router.stub.Generate(ask(latency_budget_ms=smallest))
    assert route_name(response) == "EDGE"
    assert len(edge.calls) == 1
    # Streamed, the same status before any event.
    async with asyncio.timeout(TEST_TIMEOUT_S):
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in router.stub.GenerateStream(ask(latency_budget_ms=1)):
                pass
    assert streamed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
