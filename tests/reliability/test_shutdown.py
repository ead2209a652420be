"""SIGTERM stops a router gracefully: health says NOT_SERVING first, new requests are
refused with a status that says why, the request in flight finishes and is logged, and
the process exits 0; a second SIGTERM, or the grace period's end, cancels what is left at
once (docs/reliability.md). The request in flight is held by the scripted edge (its model
pauses at its first token until the test resumes it), so nothing here races a clock."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router.process import RouterProcess
from router.status import SHUTTING_DOWN
from sllm.v1 import router_pb2, router_pb2_grpc
from tests.fakes.model import ScriptedModel, steps
from tests.fixtures.scripted_edge import serving_scripted_edge
from tests.reliability.children import start_router_child
from tests.router.requests import ask


@dataclass
class Draining:
    router: RouterProcess
    model: ScriptedModel
    stub: router_pb2_grpc.RouterStub
    channel: grpc.aio.Channel
    held: asyncio.Task[router_pb2.RouteResponse]
    signalled_at: float


async def _until(condition: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, f"waited {timeout_s} s for {what}"
        await asyncio.sleep(0.02)


async def _generate(stub: router_pb2_grpc.RouterStub) -> router_pb2.RouteResponse:
    return await stub.Generate(ask(max_tokens=8), timeout=60)


@pytest.fixture
async def draining(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Draining]:
    """A router with one request in flight (held at the edge), just sent SIGTERM; its
    grace period in seconds is the parameter."""
    model = ScriptedModel(steps("Paris", "."), pause_at=0)
    async with serving_scripted_edge(model) as edge:
        router = await start_router_child(
            edge,
            tmp_path,
            tmp_path / "outcomes.sqlite3",
            shutdown_grace_s=str(request.param),
        )
        try:
            async with grpc.aio.insecure_channel(router.target) as channel:
                stub = router_pb2_grpc.RouterStub(channel)
                held = asyncio.create_task(_generate(stub))
                await _until(lambda: model.rendered, "the request to reach the edge")
                os.kill(router.process.pid, signal.SIGTERM)
                signalled_at = time.monotonic()
                await _until(lambda: router.events("router.draining"), "the drain to start")
                yield Draining(router, model, stub, channel, held, signalled_at)
        finally:
            model.resume.set()
            router.stop()


async def _exit_status(router: RouterProcess) -> int:
    return await asyncio.to_thread(router.process.wait, 30)


@pytest.mark.parametrize("draining", [60], indirect=True)
async def test_sigterm_drains_the_request_in_flight_then_exits_0(
    draining: Draining, tmp_path: Path
) -> None:
    health = health_pb2_grpc.HealthStub(draining.channel)
    for service in ("", "sllm.v1.Router"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await draining.stub.Generate(ask(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details() == SHUTTING_DOWN
    assert draining.router.process.poll() is None and not draining.held.done()

    draining.model.resume.set()
    answered = await asyncio.wait_for(draining.held, timeout=30)
    assert answered.text == "Paris."
    assert await _exit_status(draining.router) == 0
    [drained] = draining.router.events("router.drained")
    assert drained["cut"] == 0 and not drained["interrupted"]
    with sqlite3.connect(tmp_path / "outcomes.sqlite3") as log:
        logged = log.execute(
            "SELECT COUNT(*) FROM decisions WHERE request_id = ?", (answered.request_id,)
        ).fetchone()[0]
    assert logged == 1


@pytest.mark.parametrize("draining", [60], indirect=True)
async def test_a_second_sigterm_stops_at_once(draining: Draining) -> None:
    os.kill(draining.router.process.pid, signal.SIGTERM)
    assert await _exit_status(draining.router) == 0
    with pytest.raises(grpc.aio.AioRpcError):
        await asyncio.wait_for(draining.held, timeout=30)
    [drained] = draining.router.events("router.drained")
    assert drained["cut"] == 1 and drained["interrupted"]


@pytest.mark.parametrize("draining", [1], indirect=True)
async def test_the_grace_period_end_cancels_what_is_left(draining: Draining) -> None:
    assert await _exit_status(draining.router) == 0
    with pytest.raises(grpc.aio.AioRpcError):
        await asyncio.wait_for(draining.held, timeout=30)
    [drained] = draining.router.events("router.drained")
    assert drained["cut"] == 1 and not drained["interrupted"]
    assert drained["drain_s"] >= 1.0
