"""Every branch of the cascade and the pipeline, over gRPC on 127.0.0.1, with a scripted
edge (tests/fakes/edge.py) in the router's place for a worker.

Why a fake edge: the branches depend on the edge answer's exit reason and on whether
the edge fails, which a real model does not do on request. The cloud is real where it
must answer (the cloud stand-in) and a closed port where it must fail or must not be
called: a router that called it anyway would report the cloud's error and another route.
test_routing.py and test_streaming.py run the same paths on the real model.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from router.edge_client import EdgeCall
from router.local_edge import LocalEdge
from router.scorer import Policy
from router.signals import EdgeSignals
from sllm.answers import extract_answer
from sllm.v1 import common_pb2, router_pb2
from tests.fakes.edge import EdgeReply, ScriptedEdge
from tests.fakes.model import ScriptedModel, Step
from tests.fakes.worker import scripted_worker
from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask, route_name

COLLAPSED = EdgeReply(
    text="I think it is Lyon or", final_answer=None, exit_reason=common_pb2.EXIT_REASON_COLLAPSE
)
STREAMED = EdgeReply(text="Paris.", final_answer="Paris.", deltas=("Par", "is", "."))


async def start(
    router_factory: RouterFactory, edge: ScriptedEdge | LocalEdge, cloud: Any, **router: Any
) -> RunningRouter:
    return await router_factory(fake_edge=edge, cloud=cloud, **router)


def no_cloud_call(response: router_pb2.RouteResponse) -> bool:
    """The cloud (a closed port) was not called: a call would have failed and said so."""
    return response.decision.cloud_error == "" and response.decision.timings.cloud_ms == 0


async def stream(router: RunningRouter, request: router_pb2.RouteRequest) -> list[Any]:
    return [event async for event in router.stub.GenerateStream(request)]


def kinds(events: list[Any]) -> list[str]:
    return [event.WhichOneof("event") for event in events]


# The edge answers and is kept ------------------------------------------------------------


@pytest.mark.parametrize(
    "exit_reason",
    [
        common_pb2.EXIT_REASON_STOP,
        common_pb2.EXIT_REASON_SETTLED,
        common_pb2.EXIT_REASON_LENGTH,
        common_pb2.EXIT_REASON_BUDGET,
    ],
)
async def test_an_edge_answer_that_meets_the_cascade_threshold_is_returned(
    router_factory: RouterFactory, exit_reason: common_pb2.ExitReason.ValueType
) -> None:
    edge = ScriptedEdge([EdgeReply(exit_reason=exit_reason)])
    router = await start(router_factory, edge, closed_cloud(), pre=0.0, cascade=0.0)
    response = await router.stub.Generate(ask())
    assert route_name(response) == "EDGE"
    assert (response.text, response.final_answer) == ("Paris", "Paris")
    assert not response.degraded
    decision = response.decision
    assert decision.edge_exit_reason == exit_reason
    assert decision.reason.startswith("EDGE: p_edge_ok ")
    assert "meets the cascade threshold 0.00" in decision.reason
    assert decision.HasField("p_edge_ok_after")
    assert not decision.low_confidence
    assert no_cloud_call(response)
    assert len(edge.calls) == 1


async def test_the_cascade_score_is_given_the_pre_generation_score(
    router_factory: RouterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A k-NN policy's cascade model reads it (signals.DIFFICULTY_SIGNAL); the router has
    # it from before the edge ran, and must not compute it again.
    given: list[float | None] = []
    scored = Policy.p_edge_ok_after

    def spy(
        policy: Policy, text: str, answer: str, signals: EdgeSignals, p: float | None = None
    ) -> float:
        given.append(p)
        return scored(policy, text, answer, signals, p)

    monkeypatch.setattr(Policy, "p_edge_ok_after", spy)
    router = await start(router_factory, ScriptedEdge(), closed_cloud(), pre=0.0, cascade=0.0)
    response = await router.stub.Generate(ask())
    assert route_name(response) == "EDGE"
    assert given == [pytest.approx(response.decision.p_edge_ok, abs=1e-6)]


# The edge answers and the router escalates -----------------------------------------------


async def test_a_low_cascade_score_escalates_to_the_cloud(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    edge = ScriptedEdge()
    router = await start(router_factory, edge, standin_server.settings(), pre=0.0, cascade=1.0)
    mark = standin_server.access_log.mark()
    response = await router.stub.Generate(ask(max_tokens=4))
    assert route_name(response) == "EDGE_THEN_CLOUD"
    assert "is below the cascade threshold 1.00, so it escalated" in response.decision.reason
    assert len(standin_server.access_log.completions(since=mark)) == 1
    assert len(edge.calls) == 1
    assert response.text and response.decision.timings.cloud_ms > 0
    # The cloud's text is the answer, and its final answer is found in that text.
    assert response.final_answer == (extract_answer(response.text, "FREE_TEXT") or "")


async def test_a_collapse_escalates_whatever_the_cascade_score(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    router = await start(
        router_factory, ScriptedEdge([COLLAPSED]), standin_server.settings(), cascade=0.0
    )
    response = await router.stub.Generate(ask(max_tokens=4))
    assert route_name(response) == "EDGE_THEN_CLOUD"
    assert "the edge's confidence collapsed, so it escalated" in response.decision.reason
    assert response.decision.edge_exit_reason == common_pb2.EXIT_REASON_COLLAPSE
    assert response.text != COLLAPSED.text


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"local_only": True}, "the query is local_only"),
        ({"route_hint": router_pb2.ROUTE_HINT_EDGE_ONLY}, "the route hint is EDGE_ONLY"),
        ({"latency_budget_ms": 20_000}, "the cloud needs about 6"),
    ],
)
async def test_a_query_the_cloud_may_not_answer_keeps_a_collapsed_edge_answer(
    router_factory: RouterFactory, fields: dict[str, Any], why: str
) -> None:
    # Both thresholds would send it to the cloud, and the edge collapsed; the cloud is
    # believed to need a minute (only the budget case depends on it).
    edge = ScriptedEdge([COLLAPSED])
    router = await start(
        router_factory, edge, closed_cloud(), pre=1.0, cascade=1.0, cloud_ttft_ms_prior=60_000.0
    )
    response = await router.stub.Generate(ask(**fields))
    assert route_name(response) == "EDGE"
    assert response.text == COLLAPSED.text
    assert response.decision.low_confidence
    assert why in response.decision.reason
    assert (
        "the edge's confidence collapsed, but " in response.decision.reason
        and "so the edge answer stands with low confidence" in response.decision.reason
    )
    assert no_cloud_call(response)
    # Streamed, the same: the edge's deltas, no reset.
    events = await stream(router, ask(**fields))
    assert kinds(events) == ["delta", "final"]
    assert route_name(events[-1].final) == "EDGE"


# The cloud goes first ---------------------------------------------------------------------


async def test_a_low_pre_generation_score_never_calls_the_edge(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    edge = ScriptedEdge()
    router = await start(router_factory, edge, standin_server.settings(), pre=1.0)
    response = await router.stub.Generate(ask(max_tokens=4))
    assert route_name(response) == "CLOUD"
    assert "is below the pre-generation threshold 1.00" in response.decision.reason
    assert response.decision.timings.edge_ms == 0
    assert edge.calls == []


async def test_cloud_only_never_calls_the_edge(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    edge = ScriptedEdge()
    router = await start(router_factory, edge, standin_server.settings(), pre=0.0)
    response = await router.stub.Generate(
        ask(max_tokens=4, route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY)
    )
    assert route_name(response) == "CLOUD"
    assert "the route hint is CLOUD_ONLY, so the cloud went first" in response.decision.reason
    assert edge.calls == []


async def test_cloud_only_with_the_cloud_down_fails_without_the_edge(
    router_factory: RouterFactory,
) -> None:
    edge = ScriptedEdge()
    router = await start(router_factory, edge, closed_cloud(), pre=0.0)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await router.stub.Generate(ask(route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    details = failed.value.details() or ""
    assert details.startswith("the cloud failed (") and "the route hint is CLOUD_ONLY" in details
    assert edge.calls == []


# The cloud fails ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pre", "cascade", "first"),
    [(0.0, 1.0, "the edge went first"), (1.0, 0.0, "the cloud went first")],
)
async def test_cloud_down_returns_the_edge_answer_degraded(
    router_factory: RouterFactory, pre: float, cascade: float, first: str
) -> None:
    edge = ScriptedEdge()
    router = await start(router_factory, edge, closed_cloud(), pre=pre, cascade=cascade)
    response = await router.stub.Generate(ask())
    assert route_name(response) == "EDGE_FALLBACK"
    assert response.degraded
    assert (response.text, response.final_answer) == ("Paris", "Paris")
    assert response.decision.cloud_error
    assert first in response.decision.reason
    assert "so the edge answer is returned degraded" in response.decision.reason
    assert len(edge.calls) == 1


# The edge fails ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "INVALID_ARGUMENT", "INTERNAL"]
)
async def test_an_edge_failure_sends_the_query_to_the_cloud(
    router_factory: RouterFactory, standin_server: StandInServer, code: str
) -> None:
    edge = ScriptedEdge([EdgeReply(fail=code, deltas=())])
    router = await start(router_factory, edge, standin_server.settings(), pre=0.0)
    response = await router.stub.Generate(ask(max_tokens=4))
    assert route_name(response) == "CLOUD"
    assert response.text
    assert response.decision.edge_error == f"edge {code}: scripted failure"
    assert (
        f"the edge failed (edge {code}: scripted failure), so the cloud answered"
        in response.decision.reason
    )


async def test_an_unavailable_edge_is_skipped_until_its_health_check_says_otherwise(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    # The health check runs at start (healthy) and then not for a minute.
    edge = ScriptedEdge([EdgeReply(fail="UNAVAILABLE", deltas=())])
    router = await start(
        router_factory, edge, standin_server.settings(), pre=0.0, health_interval_s=60.0
    )
    first = await router.stub.Generate(ask(max_tokens=4))
    assert route_name(first) == "CLOUD" and "UNAVAILABLE" in first.decision.edge_error
    second = await router.stub.Generate(ask(max_tokens=4))
    assert route_name(second) == "CLOUD"
    assert "the edge worker is unavailable, so the cloud went first" in second.decision.reason
    assert len(edge.calls) == 1


async def test_edge_and_cloud_both_failing_is_unavailable(router_factory: RouterFactory) -> None:
    edge = ScriptedEdge([EdgeReply(fail="INTERNAL", deltas=())])
    router = await start(router_factory, edge, closed_cloud(), pre=0.0)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await router.stub.Generate(ask())
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    details = failed.value.details() or ""
    assert details.startswith("the edge failed (edge INTERNAL: scripted failure) and the cloud")


async def test_an_edge_failure_where_the_cloud_may_not_answer_is_unavailable(
    router_factory: RouterFactory,
) -> None:
    edge = ScriptedEdge([EdgeReply(fail="INTERNAL", deltas=())])
    router = await start(router_factory, edge, closed_cloud(), pre=0.0)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await router.stub.Generate(ask(local_only=True))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (failed.value.details() or "") == (
        "the edge failed (edge INTERNAL: scripted failure) and the query is local_only"
    )


async def test_no_tier_can_answer_a_local_query_when_the_edge_is_down(
    router_factory: RouterFactory,
) -> None:
    edge = ScriptedEdge(is_healthy=False)
    router = await start(router_factory, edge, closed_cloud(), pre=0.0, health_interval_s=60.0)
    # The health check the router runs as it starts, in the background, sees it down.
    for _ in range(200):
        if not router.server.router.edge_available:
            break
        await asyncio.sleep(0.01)
    assert not router.server.router.edge_available
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await router.stub.Generate(ask(local_only=True))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert (refused.value.details() or "") == (
        "no tier can answer: the edge worker is unavailable, and the query is local_only"
    )
    assert edge.calls == []


# Streaming --------------------------------------------------------------------------------


async def test_an_accepted_edge_answer_streams_without_a_reset(
    router_factory: RouterFactory,
) -> None:
    router = await start(router_factory, ScriptedEdge([STREAMED]), closed_cloud(), cascade=0.0)
    events = await stream(router, ask())
    assert kinds(events) == ["delta", "delta", "delta", "final"]
    assert [e.delta.text for e in events[:-1]] == ["Par", "is", "."]
    assert all(e.delta.tier == router_pb2.TIER_EDGE for e in events[:-1])
    assert route_name(events[-1].final) == "EDGE" and events[-1].final.text == "Paris."


async def test_escalation_sends_a_reset_then_the_clouds_deltas(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    router = await start(
        router_factory, ScriptedEdge([STREAMED]), standin_server.settings(), cascade=1.0
    )
    events = await stream(router, ask(max_tokens=4))
    seen = kinds(events)
    assert seen[:4] == ["delta", "delta", "delta", "reset"] and seen[-1] == "final"
    assert seen.count("reset") == 1
    assert "below the cascade threshold 1.00, so it escalated" in events[3].reset.reason
    after = events[4:-1]
    assert after and all(e.delta.tier == router_pb2.TIER_CLOUD for e in after)
    final = events[-1].final
    assert route_name(final) == "EDGE_THEN_CLOUD"
    assert "".join(e.delta.text for e in after) == final.text


async def test_a_failed_escalation_resends_the_edge_answer_after_one_reset(
    router_factory: RouterFactory,
) -> None:
    router = await start(router_factory, ScriptedEdge([STREAMED]), closed_cloud(), cascade=1.0)
    events = await stream(router, ask())
    # The cloud failed before sending any text: one reset, for the escalation.
    assert kinds(events) == ["delta", "delta", "delta", "reset", "delta", "final"]
    assert events[4].delta.tier == router_pb2.TIER_EDGE and events[4].delta.text == "Paris."
    final = events[-1].final
    assert route_name(final) == "EDGE_FALLBACK" and final.degraded and final.text == "Paris."


async def test_an_edge_failing_mid_answer_is_reset_and_the_cloud_answers(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    broken = EdgeReply(text="Par", deltas=("Par",), fail="INTERNAL")
    router = await start(router_factory, ScriptedEdge([broken]), standin_server.settings())
    events = await stream(router, ask(max_tokens=4))
    seen = kinds(events)
    assert seen[:2] == ["delta", "reset"] and seen.count("reset") == 1
    assert events[1].reset.reason == "the edge failed; the cloud answers instead"
    after = events[2:-1]
    assert after and all(e.delta.tier == router_pb2.TIER_CLOUD for e in after)
    assert route_name(events[-1].final) == "CLOUD"


async def test_a_cloud_that_fails_before_any_text_needs_no_reset(
    router_factory: RouterFactory,
) -> None:
    router = await start(router_factory, ScriptedEdge([STREAMED]), closed_cloud(), pre=1.0)
    events = await stream(router, ask())
    assert kinds(events) == ["delta", "delta", "delta", "final"]
    assert route_name(events[-1].final) == "EDGE_FALLBACK"


# What the edge is asked --------------------------------------------------------------------


def only_call(edge: ScriptedEdge) -> EdgeCall:
    assert len(edge.calls) == 1
    return edge.calls[0]


async def test_the_edge_call_follows_the_plan(router_factory: RouterFactory) -> None:
    # The scripted edge reports 100 tokens/s: 48 step-by-step tokens fit a roomy budget,
    # not one half as long as they need; then the edge answers directly, with fewer.
    question = "Tom has 3 apples and buys 2 more. How many apples does he have?"
    roomy_edge, tight_edge = ScriptedEdge(), ScriptedEdge()
    roomy_router = await start(router_factory, roomy_edge, closed_cloud(), pre=0.0)
    number = common_pb2.ANSWER_FORMAT_NUMBER
    roomy = await roomy_router.stub.Generate(
        ask(question, answer_format=number, max_tokens=48, local_only=True)
    )
    call = only_call(roomy_edge)
    assert (call.reasoning_mode, call.max_tokens) == ("STEP_BY_STEP", 48)
    assert call.answer_format == "NUMBER"
    assert call.time_budget_ms <= roomy.decision.budget.latency_budget_ms
    assert roomy.reasoning_mode == common_pb2.REASONING_MODE_STEP_BY_STEP

    tight_ms = int(roomy.decision.budget.est_edge_step_by_step_ms / 2)
    tight_router = await start(router_factory, tight_edge, closed_cloud(), pre=0.0)
    tight = await tight_router.stub.Generate(
        ask(
            question,
            answer_format=number,
            max_tokens=48,
            local_only=True,
            latency_budget_ms=tight_ms,
        )
    )
    call = only_call(tight_edge)
    assert call.reasoning_mode == "DIRECT"
    assert 1 <= call.max_tokens < 48 and call.max_tokens == tight.decision.edge_max_tokens
    assert call.time_budget_ms <= tight_ms


# The in-process edge on a scripted model ----------------------------------------------------


async def test_a_collapse_judged_by_the_real_worker_escalates(
    router_factory: RouterFactory,
) -> None:
    # Everything real but the model: LocalEdge, the worker, the judge. 40 unsure tokens
    # (-3.0 each) collapse at the 32nd with the default rules; the router escalates, and
    # with the cloud down returns those 32 tokens degraded.
    script = [Step(f" word{i}", -3.0) for i in range(40)]
    edge = LocalEdge(scripted_worker(ScriptedModel(script)), metrics=CollectorRegistry())
    router = await start(router_factory, edge, closed_cloud(), cascade=0.0)
    response = await router.stub.Generate(ask(max_tokens=100))
    assert route_name(response) == "EDGE_FALLBACK" and response.degraded
    assert response.decision.edge_exit_reason == common_pb2.EXIT_REASON_COLLAPSE
    assert "the edge's confidence collapsed, so it escalated" in response.decision.reason
    assert response.text == "".join(str(step.text) for step in script[:32])
    assert response.completion_tokens == 32
