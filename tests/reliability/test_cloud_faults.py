"""Cloud faults during a stream of requests, through a real router over gRPC.

The cloud is the replay cloud (`sllm bench replay-cloud`, a real HTTP server in a child
process) behind the fault proxy (tests/cloud/fault_proxy.py); the edge is a `TimedEdge`
that needs real time and keeps to the time it is given. The policy sends every query to
the cloud first (pre-generation threshold 1.0); one in four asks for CLOUD_ONLY.

Each fault: a few healthy requests, then `N` under the fault, then the fault removed.
For each: every request gets an answer (the edge's, degraded, in the cloud's place) or a
clear status (CLOUD_ONLY: UNAVAILABLE, RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED with a
message); none outlives its latency budget by more than `MARGIN_S`; the breaker opens
after `THRESHOLD` failed attempts, and from then on queries skip the cloud (no cloud
time, no call reaching the proxy but the half-open probes); the router is back on the
cloud, by itself, within the cool-down. Figures: `pytest -s` prints one line a fault.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest

from bench.replay.process import ReplayCloudProcess
from sllm.v1 import router_pb2
from tests.cloud.fault_proxy import (
    CutBody,
    Delay,
    Fault,
    FaultProxy,
    Reset,
    Status,
    proxying,
)
from tests.fixtures.router import RouterFactory, RunningRouter
from tests.reliability.conftest import replay_settings
from tests.reliability.timed_edge import TimedEdge
from tests.router.requests import ask, route_name

N = 16
BUDGET_MS = 1_500
# How far past its budget a request may end: scheduling on a loaded 2-core machine (the
# router's own reply margin is 5 ms; the figures printed show what it really took).
MARGIN_S = 0.5
THRESHOLD = 3
COOLDOWN_S = 2.0
TEST_TIMEOUT_S = 90.0
# Faults queued for "every request from now on" (the test clears them to recover).
ALWAYS = 10_000
UNANSWERED = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
EMPTY_CHOICES = (
    '{"id": "x", "object": "chat.completion", "created": 0, "model": "replay", "choices": []}'
)


@dataclass
class Outcome:
    elapsed_s: float
    response: router_pb2.RouteResponse | None = None
    status: grpc.StatusCode | None = None
    details: str = ""


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)

    def answered(self) -> list[router_pb2.RouteResponse]:
        return [o.response for o in self.outcomes if o.response is not None]


@pytest.fixture
async def proxy(replay_cloud: ReplayCloudProcess) -> AsyncIterator[FaultProxy]:
    async with proxying(replay_cloud.base_url) as proxy:
        yield proxy


async def start(router_factory: RouterFactory, proxy: FaultProxy) -> RunningRouter:
    cloud = replay_settings(
        proxy.base_url,
        max_attempts=2,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        breaker_failure_threshold=THRESHOLD,
        breaker_cooldown_s=COOLDOWN_S,
    )
    return await router_factory(fake_edge=TimedEdge(), cloud=cloud, pre=1.0, cascade=0.0)


async def one(router: RunningRouter, request: router_pb2.RouteRequest) -> Outcome:
    started = time.monotonic()
    try:
        # The gRPC deadline well past the budget: the router must keep the budget itself.
        response = await router.stub.Generate(request, timeout=BUDGET_MS / 1000.0 + 10.0)
    except grpc.aio.AioRpcError as error:
        elapsed = time.monotonic() - started
        return Outcome(elapsed, status=error.code(), details=error.details() or "")
    return Outcome(time.monotonic() - started, response=response)


async def sequence(router: RunningRouter, count: int) -> Run:
    run = Run()
    for n in range(count):
        hint = router_pb2.ROUTE_HINT_CLOUD_ONLY if n % 4 == 3 else router_pb2.ROUTE_HINT_AUTO
        run.outcomes.append(
            await one(router, ask(latency_budget_ms=BUDGET_MS, max_tokens=16, route_hint=hint))
        )
    return run


def check_every_request(run: Run) -> None:
    for outcome in run.outcomes:
        assert outcome.elapsed_s <= BUDGET_MS / 1000.0 + MARGIN_S, outcome
        if outcome.response is None:
            assert outcome.status in UNANSWERED and outcome.details, outcome
            continue
        route = route_name(outcome.response)
        assert route in ("CLOUD", "EDGE_FALLBACK"), outcome.response.decision.reason
        assert outcome.response.degraded == (route == "EDGE_FALLBACK")
        assert outcome.response.text


async def recover(router: RunningRouter, proxy: FaultProxy) -> tuple[int, float]:
    """Clears the faults; the requests and seconds until the cloud answers again."""
    proxy.clear()
    started = time.monotonic()
    for n in range(1, 100):
        outcome = await one(router, ask(latency_budget_ms=BUDGET_MS, max_tokens=16))
        if outcome.response is not None and route_name(outcome.response) == "CLOUD":
            return n, time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError("the router never went back to the cloud")


async def edge_only_ms(router: RunningRouter, count: int = 5) -> float:
    """The median time of an edge answer that never considered the cloud: the baseline."""
    times = []
    for _ in range(count):
        outcome = await one(
            router, ask(latency_budget_ms=BUDGET_MS, route_hint=router_pb2.ROUTE_HINT_EDGE_ONLY)
        )
        assert outcome.response is not None
        times.append(outcome.elapsed_s * 1000.0)
    return statistics.median(times)


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("outage (connection reset)", Reset()),
        ("outage (HTTP 503)", Status(503)),
        ("429 storm, Retry-After: 1", Status(429, retry_after="1")),
        ("slower than the deadline", Delay(30.0)),
        # Unary requests make unary cloud calls: stream cuts are tests/cloud/test_faults.py's
        # and tests/http/test_streaming.py's.
        ("answer cut partway through", CutBody(20)),
        ("malformed JSON", Status(200, body="{not json")),
        ("an empty choice list", Status(200, body=EMPTY_CHOICES)),
    ],
)
async def test_a_cloud_fault_leaves_every_request_answered_in_time_and_recovers(
    router_factory: RouterFactory, proxy: FaultProxy, name: str, fault: Fault
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT_S):
        router = await start(router_factory, proxy)
        healthy = await sequence(router, 4)
        assert [route_name(r) for r in healthy.answered()] == ["CLOUD"] * 4
        baseline_ms = await edge_only_ms(router)

        proxy.inject(*[fault] * ALWAYS)
        reached_before, started = proxy.requests, time.monotonic()
        faulty = await sequence(router, N)
        phase_s = time.monotonic() - started
        reached = proxy.requests - reached_before
        recovered_after, recovered_s = await recover(router, proxy)

    check_every_request(healthy)
    check_every_request(faulty)
    answered = faulty.answered()
    # Every AUTO query was answered (by the edge, degraded); no CLOUD_ONLY one could be.
    assert len(answered) == N - N // 4
    assert all(r.degraded for r in answered)
    refusals = Counter(o.status.name for o in faulty.outcomes if o.status is not None)
    # The breaker: THRESHOLD failed attempts open it; after that only a probe per
    # cool-down reaches the cloud (one more: a probe may straddle the phase's end).
    probes = math.ceil(phase_s / COOLDOWN_S) + 1
    assert reached <= THRESHOLD + probes, (reached, phase_s)
    known_down = [
        o for o in faulty.outcomes if o.response and o.response.decision.timings.cloud_ms == 0
    ]
    assert all(
        o.response and o.response.degraded and not o.response.decision.cloud_error
        for o in known_down
    )
    assert len(known_down) >= len(answered) - THRESHOLD - probes
    # Back on the cloud within a cool-down (and the probe's own time).
    assert recovered_s <= COOLDOWN_S + BUDGET_MS / 1000.0 + MARGIN_S

    down_ms = statistics.median(o.elapsed_s * 1000.0 for o in known_down)
    worst_s = max(o.elapsed_s for o in faulty.outcomes)
    print(
        f"\nfault={name!r} requests={N} answered={len(answered)} refused={dict(refusals)} "
        f"reached_cloud={reached} skipped_cloud={len(known_down)} "
        f"added_while_down_p50_ms={down_ms - baseline_ms:+.1f} (edge alone {baseline_ms:.1f}) "
        f"worst_over_budget_ms={worst_s * 1000.0 - BUDGET_MS:+.0f} "
        f"recovered_after={recovered_after} requests, {recovered_s:.2f} s"
    )
