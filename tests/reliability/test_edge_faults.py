"""Edge faults: a worker process SIGKILLed mid-generation and restarted, and a generation
that hangs inside the router's own process.

The cloud is the replay cloud (a real HTTP server that answers at once). Each test is
bounded by `TEST_TIMEOUT_S`; latencies are checked against the request's budget plus
`MARGIN_S` (scheduling on a loaded machine), everything else by route and status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc
import pytest
from prometheus_client import CollectorRegistry

from bench.replay.process import ReplayCloudProcess
from edge_worker.process import EdgeWorkerProcess
from router.local_edge import STUCK_AFTER_S, LocalEdge
from sllm.v1 import router_pb2
from tests.fakes.model import ScriptedModel, steps
from tests.fixtures.router import RouterFactory, RunningRouter
from tests.reliability.conftest import replay_settings
from tests.reliability.slow_edge import real_time_worker
from tests.router.requests import ask, route_name

BUDGET_MS = 3_000
MARGIN_S = 0.5
HEALTH_INTERVAL_S = 0.1
TEST_TIMEOUT_S = 120.0


async def timed(
    router: RunningRouter, request: router_pb2.RouteRequest
) -> tuple[float, router_pb2.RouteResponse | grpc.aio.AioRpcError]:
    started = time.monotonic()
    try:
        response = await router.stub.Generate(request, timeout=BUDGET_MS / 1000.0 + 10.0)
    except grpc.aio.AioRpcError as error:
        return time.monotonic() - started, error
    return time.monotonic() - started, response


async def until(
    router: RunningRouter,
    request: router_pb2.RouteRequest,
    done: Callable[[router_pb2.RouteResponse], bool],
    *,
    within_s: float,
) -> tuple[int, float]:
    """Asks again until an answer is `done`; the requests and seconds it took."""
    started = time.monotonic()
    count = 0
    while time.monotonic() - started < within_s:
        count += 1
        _, outcome = await timed(router, request)
        if isinstance(outcome, router_pb2.RouteResponse) and done(outcome):
            return count, time.monotonic() - started
        await asyncio.sleep(HEALTH_INTERVAL_S)
    raise AssertionError(f"not done within {within_s} s ({count} requests)")


async def test_a_hung_in_process_generation_cannot_hang_the_router(
    router_factory: RouterFactory, replay_cloud: ReplayCloudProcess
) -> None:
    # Feeding the model its second token never returns until the test resumes it.
    model = ScriptedModel(steps(" Paris", " is", " lovely"), pause_at=1)
    edge = LocalEdge(real_time_worker(model), metrics=CollectorRegistry())
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            router = await router_factory(
                fake_edge=edge,
                cloud=replay_settings(replay_cloud.base_url),
                pre=0.0,
                cascade=0.0,
                health_interval_s=HEALTH_INTERVAL_S,
            )
            # The edge hangs; cut off at its share of the budget, the cloud answers.
            elapsed, hung = await timed(router, ask(latency_budget_ms=BUDGET_MS))
            assert isinstance(hung, router_pb2.RouteResponse), hung
            assert route_name(hung) == "CLOUD"
            assert hung.decision.edge_error.startswith("edge DEADLINE_EXCEEDED: no answer within")
            assert elapsed <= BUDGET_MS / 1000.0 + MARGIN_S
            # A local_only query has no other tier: a clear status, in time.
            elapsed, local = await timed(router, ask(latency_budget_ms=BUDGET_MS, local_only=True))
            assert isinstance(local, grpc.aio.AioRpcError)
            assert local.code() in (
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.UNAVAILABLE,
            ), local.details()
            assert elapsed <= BUDGET_MS / 1000.0 + MARGIN_S
            # Stuck for STUCK_AFTER_S past its deadline, the edge is reported unhealthy:
            # queries no longer wait for it.
            await until(
                router,
                ask(latency_budget_ms=BUDGET_MS),
                lambda r: "the edge worker is unavailable" in r.decision.reason,
                within_s=STUCK_AFTER_S + BUDGET_MS / 1000.0 + 2.0,
            )
            skipped = await router.stub.Generate(ask(latency_budget_ms=BUDGET_MS))
            assert route_name(skipped) == "CLOUD" and skipped.decision.timings.edge_ms == 0
            # The model returns: the edge is healthy and answers again.
            model.resume.set()
            await until(
                router,
                ask(latency_budget_ms=BUDGET_MS),
                lambda r: route_name(r) == "EDGE",
                within_s=5.0,
            )
    finally:
        model.resume.set()


@pytest.mark.slow
async def test_a_killed_edge_worker_sends_its_queries_to_the_cloud_and_is_back_once_restarted(
    router_factory: RouterFactory,
    edge_worker_factory: Callable[..., EdgeWorkerProcess],
    replay_cloud: ReplayCloudProcess,
) -> None:
    worker = await asyncio.to_thread(edge_worker_factory)
    async with asyncio.timeout(TEST_TIMEOUT_S):
        router = await router_factory(
            edge_target=worker.target,
            cloud=replay_settings(replay_cloud.base_url),
            pre=0.0,
            cascade=0.0,
            health_interval_s=HEALTH_INTERVAL_S,
        )
        story = "Write a long story about a dragon who learns to sing."
        in_flight = router.stub.GenerateStream(ask(story, max_tokens=400))
        first = await in_flight.read()
        assert isinstance(first, router_pb2.RouteEvent)
        assert first.WhichOneof("event") == "delta"  # the edge is generating
        local = router.stub.Generate(ask(story, max_tokens=400, local_only=True))
        worker.process.kill()
        events = []
        while isinstance(event := await in_flight.read(), router_pb2.RouteEvent):
            events.append(event)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await local

        # The edge's text was reset and the cloud answered in its place.
        kinds = [event.WhichOneof("event") for event in events]
        assert "reset" in kinds and kinds[-1] == "final"
        final = events[-1].final
        assert route_name(final) == "CLOUD"
        assert "edge UNAVAILABLE" in final.decision.edge_error
        # local_only has no other tier: UNAVAILABLE, saying why.
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "local_only" in (refused.value.details() or "")

        # While it is down, queries go to the cloud without trying the edge.
        down = await router.stub.Generate(ask())
        assert route_name(down) == "CLOUD"
        assert "the edge worker is unavailable" in down.decision.reason

        # Restarted on the same address: the router reconnects by itself.
        started = time.monotonic()
        await asyncio.to_thread(edge_worker_factory, "--port", str(worker.port))
        load_s = time.monotonic() - started
        requests, seconds = await until(
            router, ask(), lambda r: route_name(r) == "EDGE", within_s=10.0
        )
    print(
        f"\nedge worker SIGKILLed mid-generation: in-flight answered by the cloud, local_only "
        f"UNAVAILABLE; restarted (model loaded in {load_s:.1f} s), back on the edge "
        f"{seconds:.2f} s after it listened ({requests} requests)"
    )
