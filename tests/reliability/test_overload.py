"""Overload: more concurrent clients than the edge can serve, for a bounded time, through
a real router over gRPC (the production worker in its process, around a model that
takes `TOKEN_S` of real time a token: `TOKENS` tokens, so 5 answers a second at most).

The bounded queue refuses at once (RESOURCE_EXHAUSTED, or DEADLINE_EXCEEDED when the
queue's wait leaves no time), or the cloud takes the overflow when the policy allows;
no request outlives its budget by more than `MARGIN_S`; memory is flat (RSS growth under
`RSS_GROWTH` after a warm-up) and no file descriptor or asyncio task is left behind.
A client that cancels frees the edge slot within a token. Figures: `pytest -s`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from bench.replay.process import ReplayCloudProcess
from router.local_edge import LocalEdge
from sllm.v1 import router_pb2
from tests.fakes.model import steps
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.reliability.conftest import replay_settings
from tests.reliability.slow_edge import SlowModel, real_time_worker
from tests.router.requests import ask, route_name

TOKEN_S = 0.02
TOKENS = 10
QUEUE_SIZE = 2
CLIENTS = 12
WARM_UP_S = 2.0
RUN_S = 6.0
BUDGET_MS = 1_500
MARGIN_S = 0.5
# A refusal is "at once": far less than one answer's time on the edge.
REFUSED_WITHIN_S = 0.15
RSS_GROWTH = 0.10
TEST_TIMEOUT_S = 90.0


@dataclass
class Load:
    statuses: Counter[str] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    worst_over_budget_s: float = -1e9
    slowest_refusal_s: float = 0.0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def slow_edge(queue_size: int = QUEUE_SIZE) -> tuple[SlowModel, LocalEdge]:
    model = SlowModel(steps(*[" word"] * TOKENS), token_s=TOKEN_S)
    worker = real_time_worker(model, queue_size=queue_size)
    return model, LocalEdge(worker, metrics=CollectorRegistry())


async def client(router: RunningRouter, load: Load, until: float, *, local_only: bool) -> None:
    request = ask(latency_budget_ms=BUDGET_MS, max_tokens=TOKENS, local_only=local_only)
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            response = await router.stub.Generate(request, timeout=BUDGET_MS / 1000.0 + 10.0)
        except grpc.aio.AioRpcError as error:
            took = time.monotonic() - started
            load.statuses[error.code().name] += 1
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                load.slowest_refusal_s = max(load.slowest_refusal_s, took)
                # A client that was refused backs off a little, as clients do.
                await asyncio.sleep(0.01)
        else:
            took = time.monotonic() - started
            load.statuses["OK"] += 1
            load.routes[route_name(response)] += 1
        load.worst_over_budget_s = max(load.worst_over_budget_s, took - BUDGET_MS / 1000.0)


async def run_load(router: RunningRouter, seconds: float, *, local_only: bool) -> Load:
    load = Load()
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(client(router, load, until, local_only=local_only) for _ in range(CLIENTS))
    )
    return load


async def test_overload_on_the_edge_alone_is_refused_at_once_with_nothing_leaked(
    router_factory: RouterFactory,
) -> None:
    _, edge = slow_edge()
    async with asyncio.timeout(TEST_TIMEOUT_S):
        router = await router_factory(fake_edge=edge, cloud=closed_cloud(), pre=0.0, cascade=0.0)
        await run_load(router, WARM_UP_S, local_only=True)
        rss_before, fds_before, tasks_before = rss_kib(), fds(), len(asyncio.all_tasks())
        load = await run_load(router, RUN_S, local_only=True)
        # The last answers' writes and the gRPC calls' own cleanup are done within this.
        await asyncio.sleep(0.5)
        rss_after, fds_after, tasks_after = rss_kib(), fds(), len(asyncio.all_tasks())

    assert set(load.statuses) <= {"OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}
    assert load.statuses["OK"] > 0 and load.statuses["RESOURCE_EXHAUSTED"] > 0
    assert set(load.routes) == {"EDGE"}
    assert load.worst_over_budget_s <= MARGIN_S
    assert load.slowest_refusal_s <= REFUSED_WITHIN_S
    # At most what the edge can do in the time, and most of it.
    capacity = RUN_S / (TOKENS * TOKEN_S)
    assert load.statuses["OK"] <= capacity + CLIENTS
    assert rss_after <= rss_before * (1 + RSS_GROWTH)
    assert fds_after <= fds_before
    assert tasks_after <= tasks_before
    print(
        f"\noverload, edge alone: {CLIENTS} clients for {RUN_S:.0f} s, edge capacity "
        f"{capacity:.0f} answers: {dict(load.statuses)}; slowest refusal "
        f"{load.slowest_refusal_s * 1000:.1f} ms; worst over budget "
        f"{load.worst_over_budget_s * 1000:+.0f} ms; RSS {rss_before} -> {rss_after} KiB "
        f"({(rss_after / rss_before - 1) * 100:+.1f}%); fds {fds_before} -> {fds_after}; "
        f"tasks {tasks_before} -> {tasks_after}"
    )


async def test_overload_the_policy_lets_the_cloud_take_is_all_answered(
    router_factory: RouterFactory, replay_cloud: ReplayCloudProcess
) -> None:
    _, edge = slow_edge()
    async with asyncio.timeout(TEST_TIMEOUT_S):
        router = await router_factory(
            fake_edge=edge, cloud=replay_settings(replay_cloud.base_url), pre=0.0, cascade=0.0
        )
        load = await run_load(router, RUN_S, local_only=False)
    assert set(load.statuses) == {"OK"}
    assert load.routes["EDGE"] > 0 and load.routes["CLOUD"] > 0
    assert load.worst_over_budget_s <= MARGIN_S
    print(
        f"\noverload, cloud allowed: {CLIENTS} clients for {RUN_S:.0f} s: "
        f"{dict(load.statuses)}, routes {dict(load.routes)}; worst over budget "
        f"{load.worst_over_budget_s * 1000:+.0f} ms"
    )


async def test_a_client_that_cancels_frees_the_edge_slot_within_a_token(
    router_factory: RouterFactory,
) -> None:
    # One slot, no queue: a second query is refused until the first one's slot is free.
    model, edge = slow_edge(queue_size=0)
    model.token_s = 0.1
    async with asyncio.timeout(TEST_TIMEOUT_S):
        router = await router_factory(fake_edge=edge, cloud=closed_cloud(), pre=0.0, cascade=0.0)
        call = router.stub.GenerateStream(ask(max_tokens=TOKENS, local_only=True))
        first = await call.read()
        assert isinstance(first, router_pb2.RouteEvent) and first.WhichOneof("event") == "delta"
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await router.stub.Generate(ask(local_only=True))
        assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        fed_at_cancel, cancelled_at = len(model.fed), time.monotonic()
        call.cancel()
        for _ in range(1_000):  # 5 s at most
            if not edge.worker.engine.in_flight:
                break
            await asyncio.sleep(0.005)
        freed_s = time.monotonic() - cancelled_at
        fed_after = len(model.fed) - fed_at_cancel
        response = await router.stub.Generate(ask(max_tokens=TOKENS, local_only=True))
    # The token being decoded when the cancel arrived, and one more at most if the
    # cancel crossed a token's end on its way.
    assert fed_after <= 2
    assert route_name(response) == "EDGE"
    print(
        f"\ncancel: the edge slot was free {freed_s * 1000:.0f} ms after the client cancelled "
        f"({fed_after} tokens decoded after it, {model.token_s * 1000:.0f} ms each)"
    )
