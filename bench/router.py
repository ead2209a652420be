"""`sllm bench router`: what the router costs on top of the tiers it routes to.

1. Decision overhead, in-process: `Router.decide` (features, the ONNX scorer, budget and
   policy: everything before a tier runs) on real questions from ../shared/data; p50, p99.
2. Added latency: the same 1-token request sent to a real edge worker directly, and
   through three real router processes (local_only, so a router calls only the edge): one
   running the edge in its own process (`sllm up`'s default), the same with
   `router.outcome_commit_wait_s = 0` (it answers without waiting for its outcome-log row's
   commit: what that durability costs), and one calling that edge worker over gRPC; calls
   rotate so all see the same load. added = p50(router) - p50(direct).
   Baseline for the router over gRPC: a do-nothing grpc.aio hop (bench/capacity/echo.py
   forwarding to a bare echo server, against that server directly, paired calls): what a
   second gRPC server in the path costs before it does any work.
3. Tracing: what it costs a request with every request sampled and one in ten (a
   production setting), measured with instant tiers (bench/tracing_cost.py).

The last line prints the headline figures as key=value pairs.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.results import percentile
from bench.tracing_cost import measure_span_cpu, measure_tracing_cost
from edge_worker.process import start_edge_worker
from router.active_policy import ActivePolicy
from router.edge_client import EdgeClient
from router.estimators import CloudLatency, EdgeLatency
from router.outcomes import OutcomeLog
from router.pipeline import Router
from router.query import Query
from router.scorer import default_policy_dir
from sllm import children
from sllm.chat import ChatMessage
from sllm.settings import IN_PROCESS, CloudSettings, RouterSettings
from sllm.v1 import common_pb2, edge_pb2, edge_pb2_grpc, router_pb2, router_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
ONE_TOKEN_QUESTION = "What is the capital of France?"
TARGETS = {
    "decision_p99_ms": 0.5,
    "added_p50_ms": 1.0,
    "added_grpc_edge_p50_ms": 1.0,
    "tracing_cost_paired_p50_ms": 0.2,
}
NO_COMMIT_WAIT = "SLLM_ROUTER__OUTCOME_COMMIT_WAIT_S"


def _questions(limit: int) -> list[str]:
    lines = (DATA / "gsm8k" / "test.jsonl").open(encoding="utf-8")
    gsm8k = [json.loads(line)["question"] for line, _ in zip(lines, range(limit), strict=False)]
    strategy = [
        row["question"] for row in json.loads((DATA / "strategyqa" / "train.json").read_text())
    ]
    return [q for pair in zip(gsm8k, strategy[:limit], strict=False) for q in pair]


def _query(text: str) -> Query:
    return Query(
        messages=[ChatMessage("user", text)],
        max_tokens=256,
        latency_budget_ms=None,
        cost_ceiling_usd=None,
        route_hint="AUTO",
        local_only=False,
        answer_format="NUMBER",
        tenant="bench",
        client_request_id="",
    )


def print_verdicts(figures: dict[str, float], targets: dict[str, float]) -> None:
    """Each target met or missed, then the figures as key=value pairs on the last line."""
    for key, limit in targets.items():
        verdict = "met" if figures[key] <= limit else "MISSED"
        print(f"target {key} <= {limit}: {verdict}")
    print(" ".join(f"{key}={value:.4f}" for key, value in figures.items()))


@dataclass
class Decisions:
    """Milliseconds per `Router.decide` over real questions (no tier is called): wall time,
    and the thread's CPU time (what the code costs, whatever else the machine runs); and,
    as the baseline, per bare `Policy.p_edge_ok` call on the same questions, alternating."""

    wall: list[float]
    cpu: list[float]
    scorer: list[float]


async def measure_decisions(rounds: int, scratch: Path) -> Decisions:
    from cloud_adapter import CloudClient

    settings = RouterSettings()
    policies = ActivePolicy(default_policy_dir())
    router = Router(
        settings,
        edge=EdgeClient("127.0.0.1:9"),  # never called: deciding does no I/O
        cloud=CloudClient(CloudSettings()),
        policies=policies,
        outcomes=OutcomeLog(scratch / "decide.sqlite3", store_prompts=False, queue_size=10),
        edge_latency=EdgeLatency(prefill_tokens_per_s=300.0, decode_tokens_per_s=30.0),
        cloud_latency=CloudLatency(ttft_ms=800.0, ms_per_token=40.0),
    )
    queries = [_query(text) for text in _questions(200)]
    for query in queries[:50]:  # warm the ONNX session
        router.decide(query)
    decisions, scorer, cpu = [], [], []
    for i in range(rounds):
        query = queries[i % len(queries)]
        started, started_cpu = time.perf_counter(), time.thread_time()
        router.decide(query)
        decisions.append((time.perf_counter() - started) * 1000.0)
        cpu.append((time.thread_time() - started_cpu) * 1000.0)
        started = time.perf_counter()
        policies.current.p_edge_ok(query.text)
        scorer.append((time.perf_counter() - started) * 1000.0)
    await router.aclose()
    return Decisions(wall=decisions, cpu=cpu, scorer=scorer)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def router_process(
    edge_target: str, scratch: Path, *, http_port: int = 0, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`sllm router serve` on a free port (its HTTP door on `http_port`; 0: none); `env`:
    more settings (SLLM_* variables)."""
    scratch.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "SLLM_ROUTER__METRICS_PORT": "0",
        "SLLM_ROUTER__HTTP_PORT": str(http_port),
        "SLLM_ROUTER__OUTCOME_DB": str(scratch / "outcomes.sqlite3"),
        "SLLM_LOG__LEVEL": "warning",
        **(env or {}),
    }
    process = children.popen(
        [
            sys.executable,
            "-m",
            "sllm",
            "router",
            "serve",
            "--port",
            str(port),
            "--edge",
            edge_target,
        ],
        env=env,
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def wait_serving(target: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)


@dataclass
class Calls:
    """Milliseconds per 1-token call through one router, and direct to the edge in the same
    rounds; plus the router's own time around its edge call (its total_ms - edge_ms)."""

    direct: list[float] = field(default_factory=list)
    routed: list[float] = field(default_factory=list)
    inside_router: list[float] = field(default_factory=list)

    @property
    def added_p50_ms(self) -> float:
        return statistics.median(self.routed) - statistics.median(self.direct)

    @property
    def added_paired_p50_ms(self) -> float:
        return statistics.median(r - d for r, d in zip(self.routed, self.direct, strict=True))


async def measure_added_latency(
    edge_target: str, router_targets: dict[str, str], rounds: int
) -> dict[str, Calls]:
    """One `Calls` per router in `router_targets` (name -> target); each round calls the
    edge directly, then each router, in a new order each round, so every router is paired
    with its own direct call."""
    messages = [common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=ONE_TOKEN_QUESTION)]
    # What the router sends the edge for this query, so both calls do the same work.
    direct_request = edge_pb2.EdgeGenerateRequest(
        messages=messages,
        max_tokens=1,
        reasoning_mode=common_pb2.REASONING_MODE_DIRECT,
        answer_format=common_pb2.ANSWER_FORMAT_FREE_TEXT,
        time_budget_ms=30_000,
    )
    routed_request = router_pb2.RouteRequest(messages=messages, max_tokens=1, local_only=True)
    calls = {name: Calls() for name in router_targets}
    async with grpc.aio.insecure_channel(edge_target) as edge_channel:
        edge = edge_pb2_grpc.EdgeWorkerStub(edge_channel)
        channels = {name: grpc.aio.insecure_channel(t) for name, t in router_targets.items()}
        routers = {name: router_pb2_grpc.RouterStub(c) for name, c in channels.items()}
        # A fixed order would give each router a place in the round, and with it whatever
        # the previous call left in the caches: the order is shuffled every round.
        order = random.Random(0)
        for i in range(rounds + 10):
            names = list(routers)
            order.shuffle(names)
            for name, router in ((name, routers[name]) for name in names):
                started = time.perf_counter()
                async for _ in edge.Generate(direct_request):
                    pass
                direct_ms = (time.perf_counter() - started) * 1000.0
                started = time.perf_counter()
                response = await router.Generate(routed_request)
                routed_ms = (time.perf_counter() - started) * 1000.0
                assert response.route == router_pb2.ROUTE_EDGE, response.decision.reason
                if i >= 10:  # the first calls warm caches and connections
                    calls[name].direct.append(direct_ms)
                    calls[name].routed.append(routed_ms)
                    timings = response.decision.timings
                    calls[name].inside_router.append(timings.total_ms - timings.edge_ms)
        for channel in channels.values():
            await channel.close(grace=None)
    return calls


async def measure_grpc_hop(rounds: int, scratch: Path) -> Calls:
    """The same 1-word `Generate` to a bare echo server, directly and through a second
    bare server that only forwards it (`routed`), alternating; 100 warm-up rounds
    dropped."""
    from bench.capacity.suite import server_process

    request = router_pb2.RouteRequest(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=ONE_TOKEN_QUESTION)],
        max_tokens=1,
    )
    with server_process("bench.capacity.echo", scratch / "echo.log") as (_, echo):
        forward = ["--forward", echo["grpc"]]
        with server_process("bench.capacity.echo", scratch / "hop.log", args=forward) as (_, hop):
            async with (
                grpc.aio.insecure_channel(echo["grpc"]) as direct_channel,
                grpc.aio.insecure_channel(hop["grpc"]) as hop_channel,
            ):
                stubs = (
                    router_pb2_grpc.RouterStub(direct_channel),
                    router_pb2_grpc.RouterStub(hop_channel),
                )
                result = Calls()
                for number in range(rounds + 100):
                    times = []
                    for stub in stubs:
                        started = time.perf_counter()
                        await stub.Generate(request, timeout=10)
                        times.append((time.perf_counter() - started) * 1000.0)
                    if number >= 100:
                        result.direct.append(times[0])
                        result.routed.append(times[1])
    return result


async def _main(quick: bool) -> int:
    decision_rounds, call_rounds, tracing_rounds, span_blocks = (
        (2_000, 60, 400, 5) if quick else (20_000, 300, 2_000, 20)
    )
    with tempfile.TemporaryDirectory(prefix="sllm-bench-router-") as tmp:
        scratch = Path(tmp)
        decisions = await measure_decisions(decision_rounds, scratch)
        tracing = await measure_tracing_cost(tracing_rounds, scratch)
        span_cpu = measure_span_cpu(span_blocks)
        hop = await measure_grpc_hop(call_rounds * 10, scratch)
        edge = start_edge_worker()
        try:
            with (
                router_process(IN_PROCESS, scratch / "in-process") as in_process,
                router_process(
                    IN_PROCESS, scratch / "no-wait", env={NO_COMMIT_WAIT: "0"}
                ) as unwaited,
                router_process(edge.target, scratch / "grpc") as over_grpc,
            ):
                routers = {
                    "in_process": in_process,
                    "no_wait": unwaited,
                    "grpc_edge": over_grpc,
                }
                for target in routers.values():
                    await wait_serving(target)
                calls = await measure_added_latency(edge.target, routers, call_rounds)
        finally:
            edge.stop()
    local, remote, no_wait = calls["in_process"], calls["grpc_edge"], calls["no_wait"]
    figures = {
        "decision_p50_ms": statistics.median(decisions.wall),
        "decision_p99_ms": percentile(decisions.wall, 0.99),
        "decision_cpu_p50_ms": statistics.median(decisions.cpu),
        "decision_cpu_p99_ms": percentile(decisions.cpu, 0.99),
        "scorer_p50_ms": statistics.median(decisions.scorer),
        "scorer_p99_ms": percentile(decisions.scorer, 0.99),
        "direct_p50_ms": statistics.median(local.direct + remote.direct + no_wait.direct),
        "added_p50_ms": local.added_p50_ms,
        "added_paired_p50_ms": local.added_paired_p50_ms,
        "added_no_commit_wait_p50_ms": no_wait.added_p50_ms,
        "added_no_commit_wait_paired_p50_ms": no_wait.added_paired_p50_ms,
        "added_grpc_edge_p50_ms": remote.added_p50_ms,
        "added_grpc_edge_paired_p50_ms": remote.added_paired_p50_ms,
        "inside_router_p50_ms": statistics.median(local.inside_router),
        "inside_router_grpc_edge_p50_ms": statistics.median(remote.inside_router),
        "grpc_hop_paired_p50_ms": hop.added_paired_p50_ms,
        **tracing.figures(),
        **span_cpu.figures(),
    }
    figures["decision_over_scorer_p50"] = figures["decision_p50_ms"] / figures["scorer_p50_ms"]
    print(f"decision overhead ({len(decisions.wall)} decisions in-process, default policy):")
    print(
        f"  Router.decide       p50 {figures['decision_p50_ms']:.3f} ms  p99 "
        f"{figures['decision_p99_ms']:.3f} ms"
    )
    print(
        f"  baseline: scorer    p50 {figures['scorer_p50_ms']:.3f} ms  p99 "
        f"{figures['scorer_p99_ms']:.3f} ms  (decide / scorer p50 = "
        f"{figures['decision_over_scorer_p50']:.2f})"
    )
    print(
        f"  Router.decide, CPU  p50 {figures['decision_cpu_p50_ms']:.3f} ms  p99 "
        f"{figures['decision_cpu_p99_ms']:.3f} ms  (thread CPU time: without preemption)"
    )
    print(f"1-token request ({len(local.routed)} rounds, calls rotating):")
    print(f"  direct to the edge worker          p50 {figures['direct_p50_ms']:.2f} ms")
    for name, label in (
        ("in_process", "router, edge in its process"),
        ("no_wait", "  the same, no commit wait"),
        ("grpc_edge", "router, edge over gRPC"),
    ):
        one = calls[name]
        print(
            f"  {label:<33}  p50 {statistics.median(one.routed):.2f} ms: added "
            f"{one.added_p50_ms:.2f} ms (paired {one.added_paired_p50_ms:.2f}; router's "
            f"own work around the edge call {statistics.median(one.inside_router):.2f})"
        )
    print(
        f"  baseline: a do-nothing grpc.aio hop  added {figures['grpc_hop_paired_p50_ms']:.2f} ms "
        f"(paired p50 of {len(hop.routed)}; bare server p50 {statistics.median(hop.direct):.2f} ms)"
    )
    print(tracing.summary())
    print(span_cpu.summary())
    print_verdicts(figures, TARGETS)
    return 0


def run(quick: bool) -> int:
    return asyncio.run(_main(quick))
