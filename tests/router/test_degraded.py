"""Degraded means degraded: an edge answer given where the policy wanted the cloud is
flagged (`degraded`, route EDGE_FALLBACK), said so in the reason and counted in
`sllm_router_degraded_total{cause}`, whether the cloud failed during the call or was
known down (its breaker open) before it. Not degraded when the policy wanted the edge
anyway, or when the client or the budget kept the cloud out.

First as plain numbers (`plan`, `judge_edge`), then through gRPC with a scripted edge
and a cloud at a closed port whose breaker opens after one failure.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from prometheus_client import REGISTRY

from router.policy import cloud_down_only, judge_edge, plan
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask, route_name
from tests.router.test_policy import QUERY, SITUATION

BREAKER_OPEN = "the cloud's circuit breaker is open"
DOWN = dataclasses.replace(SITUATION, cloud_available=False)
# Every test here is done in well under this on an idle machine.
TEST_TIMEOUT_S = 60.0


# Plain numbers ----------------------------------------------------------------------------


def test_a_query_meant_for_the_cloud_that_the_edge_takes_while_it_is_down_is_degraded() -> None:
    decided = plan(QUERY, dataclasses.replace(DOWN, p_edge_ok=0.2))
    assert (decided.first, decided.degraded) == ("EDGE", True)
    assert decided.why == (
        f"p_edge_ok 0.20 is below the pre-generation threshold 0.50, but {BREAKER_OPEN}"
    )


def test_a_query_meant_for_the_edge_is_not_degraded_by_a_cloud_that_is_down() -> None:
    decided = plan(QUERY, DOWN)
    assert (decided.first, decided.degraded) == ("EDGE", False)


@pytest.mark.parametrize(
    ("query_change", "situation_change"),
    [
        ({"local_only": True}, {}),
        ({"route_hint": "EDGE_ONLY"}, {}),
        ({"cost_ceiling_usd": 0.0001}, {}),
        ({}, {"tenant_remaining_usd": 0.0}),
        ({}, {"est_cloud_ms": 20_000.0}),
    ],
)
def test_a_cloud_kept_out_by_the_client_or_the_budget_is_not_degradation(
    query_change: dict[str, object], situation_change: dict[str, object]
) -> None:
    # Down as well: up, it still could not have answered.
    query = dataclasses.replace(QUERY, **query_change)  # type: ignore[arg-type]
    situation = dataclasses.replace(DOWN, p_edge_ok=0.2, **situation_change)  # type: ignore[arg-type]
    assert not cloud_down_only(query, situation)
    assert not plan(query, situation).degraded


@pytest.mark.parametrize(
    ("collapsed", "p_edge_ok_after", "degraded"),
    [(True, 0.9, True), (False, 0.1, True), (False, 0.9, False)],
)
def test_an_escalation_stopped_by_a_cloud_that_is_down_is_degraded(
    collapsed: bool, p_edge_ok_after: float, degraded: bool
) -> None:
    verdict = judge_edge(
        collapsed=collapsed,
        p_edge_ok_after=p_edge_ok_after,
        cascade_threshold=0.5,
        cloud_blocker_now=BREAKER_OPEN,
        cloud_down=True,
    )
    assert not verdict.escalate
    # An answer that meets the cascade threshold is what the policy wanted anyway.
    assert (verdict.low_confidence, verdict.degraded) == (degraded, degraded)
    assert (BREAKER_OPEN in verdict.why) == degraded


# Through gRPC ----------------------------------------------------------------------------


def degraded_count(cause: str) -> float:
    value = REGISTRY.get_sample_value("sllm_router_degraded_total", {"cause": cause})
    return value or 0.0


async def open_breaker(router: RunningRouter) -> None:
    """One query to the cloud (a closed port): it fails, the breaker (threshold 1) opens."""
    first = await router.stub.Generate(ask())
    assert route_name(first) == "EDGE_FALLBACK" and first.decision.cloud_error
    assert router.server.router.cloud.breaker_state == "open"  # type: ignore[union-attr]


async def breaker_router(
    router_factory: RouterFactory, *, pre: float, cascade: float
) -> RunningRouter:
    # A cool-down far longer than the test: the breaker stays open throughout.
    cloud = closed_cloud(breaker_failure_threshold=1, breaker_cooldown_s=600.0)
    return await router_factory(fake_edge=ScriptedEdge(), cloud=cloud, pre=pre, cascade=cascade)


@pytest.mark.parametrize(
    ("pre", "cascade", "why"),
    [
        (1.0, 0.0, "is below the pre-generation threshold 1.00, but " + BREAKER_OPEN),
        (0.0, 1.0, "is below the cascade threshold 1.00, but " + BREAKER_OPEN),
    ],
)
async def test_with_the_breaker_open_the_edge_answer_the_policy_did_not_want_is_degraded(
    router_factory: RouterFactory, pre: float, cascade: float, why: str
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT_S):
        router = await breaker_router(router_factory, pre=pre, cascade=cascade)
        failed_before, down_before = degraded_count("cloud_failed"), degraded_count("cloud_down")
        await open_breaker(router)
        response = await router.stub.Generate(ask())
        streamed = [event async for event in router.stub.GenerateStream(ask())]

    for answer in (response, streamed[-1].final):
        assert route_name(answer) == "EDGE_FALLBACK"
        assert answer.degraded
        assert why in answer.decision.reason
        assert answer.decision.reason.endswith(
            "the cloud is down, so the edge answer is returned degraded."
        )
        # Known down: no cloud call was tried.
        assert answer.decision.cloud_error == "" and answer.decision.timings.cloud_ms == 0
    assert [e.WhichOneof("event") for e in streamed] == ["delta", "final"]
    assert degraded_count("cloud_failed") - failed_before == 1
    assert degraded_count("cloud_down") - down_before == 2


async def test_with_the_breaker_open_a_query_meant_for_the_edge_is_a_plain_edge_answer(
    router_factory: RouterFactory,
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT_S):
        router = await breaker_router(router_factory, pre=1.0, cascade=0.0)
        await open_breaker(router)
        # The pre-generation threshold is 1.00: only a query kept off the cloud by the
        # client stays on the edge, and then it is not degraded.
        response = await router.stub.Generate(ask(local_only=True))
    assert route_name(response) == "EDGE"
    assert not response.degraded
    assert response.decision.reason.startswith("EDGE: the query is local_only")
