"""`sllm bench capacity`'s load generator keeps its bounds (requests, errors counted, the
open loop's count from its rate and time), and the instant edge is answered through the
real router as an EDGE route. No timings are checked."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from bench.capacity.echo import REPLY
from bench.capacity.load import Call, closed_loop, open_loop
from bench.capacity.suite import server_process
from bench.instant_edge import TEXT, InstantEdge
from router.server import build_router
from router.validate import to_query
from sllm.settings import CloudSettings, RouterSettings, Settings
from sllm.v1 import common_pb2, router_pb2, router_pb2_grpc


def _clients(count: int, calls: list[int], *, failing: int = -1) -> list[Call]:
    def client(number: int) -> Call:
        async def call() -> None:
            calls.append(number)
            await asyncio.sleep(0)
            if number == failing:
                raise RuntimeError("refused")

        return call

    return [client(number) for number in range(count)]


async def test_a_closed_loop_sends_exactly_the_requests_asked_for() -> None:
    calls: list[int] = []
    results = await closed_loop(_clients(4, calls), requests=10, seconds=60.0)
    assert len(calls) == 10
    assert len(results.latencies_ms) == 10
    assert set(calls) == {0, 1, 2, 3}


async def test_failed_requests_are_counted_as_errors() -> None:
    calls: list[int] = []
    results = await closed_loop(_clients(2, calls, failing=1), requests=8, seconds=60.0)
    assert len(results.errors) == calls.count(1) > 0
    assert len(results.latencies_ms) + len(results.errors) == 8


@pytest.mark.parametrize(("requests", "expected"), [(1000, 20), (5, 5)])
async def test_an_open_loop_sends_rate_times_seconds_at_most_requests(
    requests: int, expected: int
) -> None:
    calls: list[int] = []
    results = await open_loop(_clients(3, calls), requests, seconds=0.02, rate=1000.0)
    assert len(calls) == len(results.latencies_ms) == expected


async def test_the_instant_edge_answers_through_the_router(tmp_path: Path) -> None:
    settings = Settings(
        router=RouterSettings(outcome_db=tmp_path / "outcomes.sqlite3"),
        cloud=CloudSettings(base_url="http://127.0.0.1:9/v1"),
    )
    router = await build_router(settings, edge=InstantEdge())
    try:
        message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="Capital of France?")
        request = router_pb2.RouteRequest(
            messages=[message], max_tokens=16, route_hint=router_pb2.ROUTE_HINT_EDGE_ONLY
        )
        result = await router.generate(to_query(request, router.settings))
    finally:
        await router.aclose()
    assert (result.route, result.text) == ("EDGE", TEXT)


def test_router_cpu_pairs_this_checkout_with_another_and_reports_both(tmp_path: Path) -> None:
    """`sllm bench router-cpu` through the CLI, with this checkout as the other one too
    (a worktree of another commit works the same way): both run every round, routed EDGE
    (the driver fails on any other route), and the last line holds both figures and
    their ratio. No timing is checked."""
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "sllm.cli", "bench", "router-cpu", "--rounds", "2"]
    command += ["--requests", "40", "--tasks", "4", "--against", str(root)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["round 1/2", "round 2/2"]
    figures = dict(pair.split("=") for pair in lines[-1].split())
    assert figures["route"] == "EDGE"
    assert float(figures["cpu_ms"]) > 0 and float(figures["against_cpu_ms"]) > 0
    assert float(figures["ratio"]) > 0


async def test_the_do_nothing_hop_answers_what_the_server_behind_it_answers(
    tmp_path: Path,
) -> None:
    """`sllm bench router`'s baseline for a second gRPC server in the path: the echo
    server with --forward passes each request on and returns the reply unchanged."""
    request = router_pb2.RouteRequest(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="Hi?")]
    )
    with server_process("bench.capacity.echo", tmp_path / "echo.log") as (_, echo):
        forward = ["--forward", echo["grpc"]]
        with server_process("bench.capacity.echo", tmp_path / "hop.log", args=forward) as (
            _,
            hop,
        ):
            async with grpc.aio.insecure_channel(hop["grpc"]) as channel:
                reply = await router_pb2_grpc.RouterStub(channel).Generate(request, timeout=10)
    assert reply == REPLY
