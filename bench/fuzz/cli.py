"""`sllm bench fuzz`: the long run of hostile input (tests/reliability/test_hostile_input.py
is the quick one). A real edge worker (the bundled model) and a router in child
processes; the router's tiers are closed ports, so what it accepts fails fast (UNAVAILABLE,
503) and the run stays on the doors, validation and decisions rather than on generation,
which the edge worker's own calls reach."""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import strategies as st

from bench.fuzz import run
from bench.fuzz.hostile import edge_calls, http_calls, router_calls
from edge_worker.process import start_edge_worker
from router.process import start_router
from sllm.cli import SubParsers
from sllm.v1 import common_pb2, edge_pb2, router_pb2, router_pb2_grpc

HELP = "hostile requests on every RPC of the router and the edge worker and on the HTTP door"
CLOSED = "127.0.0.1:9"


def _still_serving(targets: run.Targets) -> list[str]:
    """What is wrong with the servers after the run (nothing: an empty list)."""
    problems = []
    assert targets.router is not None and targets.edge is not None
    with grpc.insecure_channel(targets.router) as channel:
        try:
            router_pb2_grpc.RouterStub(channel).GetPolicy(router_pb2.GetPolicyRequest(), timeout=10)
        except grpc.RpcError as error:
            problems.append(f"router GetPolicy: {error}")
    with grpc.insecure_channel(targets.edge) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        if health.status != health_pb2.HealthCheckResponse.SERVING:
            problems.append(f"edge health: {health.status}")
        ask = edge_pb2.EdgeGenerateRequest(
            messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="2 + 2?")],
            max_tokens=4,
        )
        generate = channel.unary_stream("/sllm.v1.EdgeWorker/Generate", ask.SerializeToString, None)
        try:
            list(generate(ask, timeout=30))
        except grpc.RpcError as error:
            problems.append(f"edge Generate: {error}")
    return problems


def _report(tally: run.Tally, seconds: float) -> None:
    print(f"{tally.tried:,} requests in {seconds:.0f} s; slowest answer {tally.slowest_s:.2f} s")
    for (method, status), count in sorted(tally.statuses.items()):
        print(f"  {method:<28} {status:<20} {count:>6,}")
    print(f"rules broken: {len(tally.violations)}")
    for violation in tally.violations[:20]:
        print(f"  {violation[:400]}")


def _run(args: argparse.Namespace) -> int:
    # The edge worker answers before its deadline (an early BUDGET exit): its calls end.
    run.CALL_TIMEOUT_S = args.timeout_s
    with tempfile.TemporaryDirectory(prefix="sllm-bench-fuzz-") as scratch:
        edge = start_edge_worker()
        router = None
        try:
            router = start_router(
                "--edge",
                CLOSED,
                env={
                    "SLLM_CLOUD__BASE_URL": f"http://{CLOSED}/v1",
                    "SLLM_CLOUD__MAX_ATTEMPTS": "1",
                    "SLLM_ROUTER__OUTCOME_DB": str(Path(scratch) / "outcomes.sqlite3"),
                    "SLLM_ROUTER__METRICS_PORT": "0",
                    "SLLM_ROUTER__HTTP_PORT": str(args.http_port),
                },
                log_path=Path(scratch) / "router.log",
            )
            [listening] = router.events("router.listening")
            targets = run.Targets(router=router.target, edge=edge.target, http=listening["http"])
            calls = st.one_of(router_calls(), edge_calls(), http_calls())
            started = time.monotonic()

            # In parts of 500, each with its own Hypothesis run and channels: a single
            # run of 10,000 grew the client past 8 GB (a 4 MB message at a time).
            tally = run.Tally()
            while tally.tried < args.requests:
                part = min(500, args.requests - tally.tried)
                run.fuzz(targets, calls, part, stop_at_first=False, tally=tally)
                gc.collect()
                print(f"  ... {tally.tried:,}", file=sys.stderr, flush=True)
            _report(tally, time.monotonic() - started)
            crashed = [
                name
                for name, process in (("router", router.process), ("edge", edge.process))
                if process.poll() is not None
            ]
            problems = [f"{name} exited" for name in crashed] or _still_serving(targets)
        finally:
            if router is not None:
                router.stop()
            edge.stop()
    print("servers afterwards:", "; ".join(problems) or "both alive and answering")
    return 1 if tally.violations or problems else 0


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("fuzz", help=HELP, description=HELP)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--timeout-s", type=float, default=5.0, help="each call's deadline")
    parser.add_argument("--http-port", type=int, default=18080, help="the router's HTTP door")
    parser.set_defaults(handler=_run)
