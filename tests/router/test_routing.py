"""End to end over gRPC: the real edge worker (SmolLM2), the real cloud stand-in
(llama_cpp.server), the router in-process on 127.0.0.1. Each test forces the situation it
checks through the policy's thresholds, the budget or the configuration, and reads the
decision record and the stand-in's access log to see what really happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router.estimators import RouterOverhead
from sllm.settings import RouterSettings
from sllm.v1 import common_pb2, router_pb2
from tests.fixtures.cloud import StandInServer
from tests.fixtures.edge import EdgeWorkerProcess
from tests.fixtures.router import CLOSED_PORT_TARGET, RouterFactory, closed_cloud
from tests.router.requests import ask, route_name

pytestmark = pytest.mark.slow


async def test_an_easy_question_stays_on_the_edge_and_says_why(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(pre=0.0, cascade=0.0)
    mark = standin_server.access_log.mark()
    response = await router.stub.Generate(ask())
    assert route_name(response) == "EDGE"
    assert response.text
    assert response.request_id
    decision = response.decision
    assert decision.reason.startswith("EDGE: p_edge_ok ")
    assert "meets the pre-generation threshold 0.00" in decision.reason
    assert "meets the cascade threshold 0.00" in decision.reason
    assert 0.0 <= decision.p_edge_ok <= 1.0
    assert decision.difficulty == pytest.approx(1.0 - decision.p_edge_ok)
    assert decision.HasField("p_edge_ok_after")
    assert decision.edge_exit_reason != common_pb2.EXIT_REASON_UNSPECIFIED
    assert decision.policy_version.endswith("+test-0.0-0.0")
    assert decision.budget.latency_budget_source == "default"
    assert decision.timings.edge_ms > 0 and decision.timings.cloud_ms == 0
    assert decision.timings.total_ms >= decision.timings.edge_ms
    assert standin_server.access_log.completions(since=mark) == []


async def test_a_low_cascade_score_escalates_to_the_cloud(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(pre=0.0, cascade=1.0)
    mark = standin_server.access_log.mark()
    response = await router.stub.Generate(ask())
    assert route_name(response) == "EDGE_THEN_CLOUD"
    assert "is below the cascade threshold 1.00, so it escalated" in response.decision.reason
    assert response.decision.timings.cloud_ms > 0
    assert len(standin_server.access_log.completions(since=mark)) == 1


async def test_a_low_pre_generation_score_goes_straight_to_the_cloud(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(pre=1.0)
    response = await router.stub.Generate(ask())
    assert route_name(response) == "CLOUD"
    assert "is below the pre-generation threshold 1.00" in response.decision.reason
    assert response.decision.timings.edge_ms == 0
    assert response.reasoning_mode == common_pb2.REASONING_MODE_UNSPECIFIED


async def test_a_budget_too_small_for_the_cloud_keeps_the_answer_at_the_edge(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    # The cloud is believed to need a minute; the query allows 20 s.
    router = await real_router(
        pre=1.0,
        cascade=1.0,
        cloud_ttft_ms_prior=60_000.0,
    )
    mark = standin_server.access_log.mark()
    response = await router.stub.Generate(ask(latency_budget_ms=20_000))
    decision = response.decision
    assert route_name(response) == "EDGE"
    assert decision.low_confidence
    assert decision.budget.latency_budget_source == "request"
    assert decision.budget.est_cloud_ms > decision.budget.latency_budget_ms
    # Less the reply's margin and the router's overheads (their prior: none measured yet).
    planned_ms = 20_000 - RouterSettings().reply_margin_ms - RouterOverhead().reserve_ms()
    assert "the cloud needs about" in decision.reason
    assert f"{planned_ms:.0f} ms remain" in decision.reason
    assert "low confidence" in decision.reason
    assert standin_server.access_log.completions(since=mark) == []


async def test_a_budget_too_small_for_step_by_step_picks_direct(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router()
    question = "Tom has 3 apples and buys 2 more. How many apples does he have?"
    roomy = await router.stub.Generate(
        ask(question, answer_format=common_pb2.ANSWER_FORMAT_NUMBER, max_tokens=48, local_only=True)
    )
    assert roomy.reasoning_mode == common_pb2.REASONING_MODE_STEP_BY_STEP
    assert roomy.decision.edge_max_tokens == 48
    step_by_step_ms = roomy.decision.budget.est_edge_step_by_step_ms
    # Half of what step by step is estimated to need, but more than a direct answer.
    tight_ms = int(step_by_step_ms / 2)
    tight = await router.stub.Generate(
        ask(
            question,
            answer_format=common_pb2.ANSWER_FORMAT_NUMBER,
            max_tokens=48,
            local_only=True,
            latency_budget_ms=tight_ms,
        )
    )
    assert tight.reasoning_mode == common_pb2.REASONING_MODE_DIRECT
    assert 1 <= tight.decision.edge_max_tokens < 48


async def test_local_only_never_reaches_the_configured_cloud(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    # Both thresholds would send the query to the cloud, were it allowed.
    router = await real_router(pre=1.0, cascade=1.0)
    mark = standin_server.access_log.mark()
    response = await router.stub.Generate(ask(local_only=True))
    assert route_name(response) == "EDGE"
    assert "the query is local_only" in response.decision.reason
    stream = [event async for event in router.stub.GenerateStream(ask(local_only=True))]
    assert route_name(stream[-1].final) == "EDGE"
    assert standin_server.access_log.completions(since=mark) == []


@pytest.mark.parametrize(
    ("pre", "cascade", "first"),
    [(0.0, 1.0, "the edge went first"), (1.0, 0.0, "the cloud went first")],
)
async def test_cloud_down_returns_the_edge_answer_degraded(
    router_factory: RouterFactory,
    edge_server: EdgeWorkerProcess,
    pre: float,
    cascade: float,
    first: str,
) -> None:
    # Escalating after the edge answered, or the cloud first: either way it fails.
    router = await router_factory(
        edge_target=edge_server.target, cloud=closed_cloud(), pre=pre, cascade=cascade
    )
    response = await router.stub.Generate(ask())
    assert route_name(response) == "EDGE_FALLBACK"
    assert response.degraded
    assert response.text
    assert response.decision.cloud_error
    assert first in response.decision.reason
    assert "so the edge answer is returned degraded" in response.decision.reason


async def test_edge_known_down_goes_to_the_cloud(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    router = await router_factory(
        edge_target=CLOSED_PORT_TARGET, cloud=standin_server.settings(), pre=0.0
    )
    response = await router.stub.Generate(ask())
    assert route_name(response) == "CLOUD"
    assert response.text
    # The health watch usually knows before the first request; if not, the call fails.
    assert (
        "the edge worker is unavailable" in response.decision.reason
        or "UNAVAILABLE" in response.decision.edge_error
    )


async def test_an_overloaded_edge_sends_the_query_to_the_cloud(
    router_factory: RouterFactory,
    edge_worker_factory: Callable[..., EdgeWorkerProcess],
    standin_server: StandInServer,
) -> None:
    # No queue: while the worker generates, a second request is refused at once.
    edge = edge_worker_factory("--queue-size", "0")
    router = await router_factory(edge_target=edge.target, cloud=standin_server.settings(), pre=0.0)
    story = ask("Write a long story about a dragon.", max_tokens=400, local_only=True)
    long = router.stub.GenerateStream(story)
    first = await long.read()
    # The worker is busy with the story from its first token on.
    assert first.WhichOneof("event") == "delta"
    response = await router.stub.Generate(ask())
    assert route_name(response) == "CLOUD"
    assert "RESOURCE_EXHAUSTED" in response.decision.edge_error
    assert "the edge failed" in response.decision.reason
    long.cancel()


async def test_health_is_not_serving_when_neither_tier_can_answer(
    router_factory: RouterFactory,
) -> None:
    router = await router_factory(
        edge_target=CLOSED_PORT_TARGET,
        cloud=closed_cloud(breaker_failure_threshold=1, breaker_cooldown_s=60.0),
        health_interval_s=0.05,
    )
    health = health_pb2_grpc.HealthStub(router.channel)
    # The cloud's breaker is closed until a call fails: the router still tries it.
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await router.stub.Generate(ask())
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the cloud failed" in (failed.value.details() or "")
    assert "edge" in (failed.value.details() or "")
    status = None
    for _ in range(100):
        reply = await health.Check(health_pb2.HealthCheckRequest(service="sllm.v1.Router"))
        status = reply.status
        if status == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        await asyncio.sleep(0.05)
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await router.stub.Generate(ask())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no tier can answer" in (refused.value.details() or "")


async def test_get_policy_reports_the_policy_and_live_statistics(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(pre=0.0, cascade=1.0)
    await router.stub.Generate(ask())
    await router.stub.Generate(ask(local_only=True))
    info = await router.stub.GetPolicy(router_pb2.GetPolicyRequest())
    assert info.version.endswith("+test-0.0-1.0")
    assert (info.pre_generation_threshold, info.cascade_threshold) == (0.0, 1.0)
    assert info.scorer
    assert info.loaded_at.seconds > 0
    assert info.stats.requests == 2
    assert dict(info.stats.route_share) == {"EDGE_THEN_CLOUD": 0.5, "EDGE": 0.5}
    assert info.stats.escalation_rate == 0.5


@pytest.mark.parametrize("deadline_s", [1.0, 5.0, 25.0])
async def test_without_a_latency_budget_the_grpc_deadline_is_the_budget(
    real_router: RouterFactory, deadline_s: float
) -> None:
    router = await real_router()
    response = await router.stub.Generate(ask(local_only=True), timeout=deadline_s)
    budget = response.decision.budget
    assert budget.latency_budget_source == "grpc_deadline"
    # Never more than the client gave, less the reply's margin; not much less either (the
    # request's way in, gRPC's rounding of the timeout; loose: a shared machine stalls).
    client_ms = deadline_s * 1000.0 - RouterSettings().reply_margin_ms
    assert 0.9 * client_ms < budget.latency_budget_ms <= client_ms
    # A request's own budget wins when it is the tighter one.
    tighter = await router.stub.Generate(
        ask(local_only=True, latency_budget_ms=500), timeout=deadline_s
    )
    assert tighter.decision.budget.latency_budget_source == "request"
    assert tighter.decision.budget.latency_budget_ms == 500 - RouterSettings().reply_margin_ms
