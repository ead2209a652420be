"""`sllm bench capacity`: requests/s and latency through one router process whose tiers
answer at once, so that what is measured is the router itself (and the loopback, and the
client): labelled "instant tiers" wherever it is reported.

- EDGE route: `InstantEdge` in the router's process (bench/instant_edge.py), EDGE_ONLY.
- CLOUD route: the replay cloud (`sllm bench replay-cloud`, a process of its own) at zero
  latency, CLOUD_ONLY; the router's openai client and its HTTP hop are in the figure.

For each door (gRPC, the HTTP door) and route: the saturation rate, N clients in a closed
loop from a separate load-generator process (bench/capacity/load.py), bounded in requests
and seconds; then an open loop at half that rate, whose p50/p99 are the router-added
latency at half load (target p99 <= 5 ms). Each run also reads the CPU time the router
(and the replay cloud) used per request from /proc: on a shared machine this is the
steadier figure, and 1000 / (router CPU ms per request) is what one core could route.
Baseline in the same run, interleaved with the router's cases: a bare grpc.aio server
with the same `Generate` answering a fixed reply (bench/capacity/echo.py), at saturation
and at the rate of the router's gRPC EDGE half load: what grpc.aio and this machine allow.
Full runs make `passes` passes over the cases, interleaved, and keep the median.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.replay.process import start_replay_cloud
from bench.results import headline, percentile, write_json
from sllm import children

# (door, route); "baseline" is the bare grpc.aio server, reached by the gRPC client.
CASES = (
    ("grpc", "EDGE"),
    ("baseline", "EDGE"),
    ("grpc", "CLOUD"),
    ("http", "EDGE"),
    ("http", "CLOUD"),
)
TARGETS = {"EDGE": 2000.0, "CLOUD": 1000.0}
HALF_LOAD_P99_TARGET_MS = 5.0


@dataclass(frozen=True)
class Run:
    """One load-generator run: answered requests and what they cost."""

    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    router_cpu_ms: float  # per answered request
    cloud_cpu_ms: float
    load_cpu_ms: float


@dataclass(frozen=True)
class Case:
    door: str
    route: str
    saturation: Run
    half_load: Run


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server_process(
    module: str,
    log_path: Path,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """`python -m module ARGS`, once it has printed its addresses (a JSON line)."""
    with log_path.open("w") as log:
        process = children.popen(
            [sys.executable, "-m", module, *args],
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{module} did not start: see {log_path}")
            yield process, json.loads(line)
        finally:
            process.terminate()
            process.wait(timeout=30)


def router_env(cloud_url: str, scratch: Path) -> dict[str, str]:
    """The replay cloud as its cloud; the log at info (the default: writing it is part of
    the router's work) goes to router.log."""
    return {
        "SLLM_CLOUD__BASE_URL": cloud_url,
        "SLLM_CLOUD__MODEL": "replay",
        "SLLM_ROUTER__METRICS_PORT": "0",
        "SLLM_ROUTER__OUTCOME_DB": str(scratch / "outcomes.sqlite3"),
        "SLLM_LOG__FORMAT": "json",
    }


def generate_load(
    door: str,
    target: str,
    route: str,
    *,
    clients: int,
    seconds: float,
    rate: float | None,
    pids: tuple[int, int],
) -> Run:
    command = [
        sys.executable,
        "-m",
        "bench.capacity.load",
        "--door",
        door,
        "--target",
        target,
        "--route",
        route,
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        "--requests",
        str(int(seconds * 20_000)),
    ]
    if rate is not None:
        command += ["--rate", f"{rate:.1f}"]
    before = [cpu_s(pid) for pid in pids]
    done = children.run(command, timeout=seconds + 120)
    after = [cpu_s(pid) for pid in pids]
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    latencies = report["latencies_ms"]
    answered = max(1, len(latencies))
    if report["errors"]:
        print(f"  {len(report['errors'])} errors, first: {report['errors'][0]}")
    return Run(
        requests=len(latencies),
        errors=len(report["errors"]),
        rps=len(latencies) / report["elapsed_s"],
        p50_ms=statistics.median(latencies) if latencies else float("nan"),
        p99_ms=percentile(latencies, 0.99) if latencies else float("nan"),
        router_cpu_ms=(after[0] - before[0]) * 1000.0 / answered,
        cloud_cpu_ms=(after[1] - before[1]) * 1000.0 / answered,
        load_cpu_ms=report["cpu_s"] * 1000.0 / answered,
    )


def _median_run(runs: list[Run]) -> Run:
    """Field by field, the median over passes."""
    return Run(
        **{
            name: type(getattr(runs[0], name))(
                statistics.median(getattr(run, name) for run in runs)
            )
            for name in Run.__dataclass_fields__
        }
    )


def measure(clients: int, seconds: float, passes: int, scratch: Path) -> list[Case]:
    cloud = start_replay_cloud("--fallback-answer", "Paris")
    try:
        with (
            server_process(
                "bench.capacity.serve", scratch / "router.log", router_env(cloud.base_url, scratch)
            ) as (router, doors),
            server_process("bench.capacity.echo", scratch / "echo.log") as (echo, baseline),
        ):
            targets = {
                "grpc": doors["grpc"],
                "http": doors["http"].removeprefix("http://"),
                "baseline": baseline["grpc"],
            }
            runs: dict[tuple[str, str], list[tuple[Run, Run]]] = {}
            for number in range(passes):
                for door, route in CASES:
                    print(f"pass {number + 1}/{passes}: {door} {route} ...", flush=True)
                    pids = (echo.pid if door == "baseline" else router.pid, cloud.process.pid)
                    client = "http" if door == "http" else "grpc"
                    # Warms connections, caches and the openai client's pool.
                    generate_load(
                        client,
                        targets[door],
                        route,
                        clients=clients,
                        seconds=1.0,
                        rate=None,
                        pids=pids,
                    )
                    full = generate_load(
                        client,
                        targets[door],
                        route,
                        clients=clients,
                        seconds=seconds,
                        rate=None,
                        pids=pids,
                    )
                    # The baseline at the router's gRPC EDGE half-load rate: same rate, paired.
                    rate = (
                        runs[("grpc", "EDGE")][-1][0].rps if door == "baseline" else full.rps
                    ) / 2
                    half = generate_load(
                        client,
                        targets[door],
                        route,
                        clients=clients,
                        seconds=seconds,
                        rate=rate,
                        pids=pids,
                    )
                    runs.setdefault((door, route), []).append((full, half))
    finally:
        cloud.stop()
    return [
        Case(door, route, _median_run([f for f, _ in pair]), _median_run([h for _, h in pair]))
        for (door, route), pair in runs.items()
    ]


def figures(cases: list[Case]) -> dict[str, float]:
    out: dict[str, float] = {}
    for case in cases:
        key = f"{case.route.lower()}_{case.door}"
        out[f"{key}_rps"] = case.saturation.rps
        out[f"{key}_p50_ms"] = case.saturation.p50_ms
        out[f"{key}_p99_ms"] = case.saturation.p99_ms
        out[f"{key}_half_p50_ms"] = case.half_load.p50_ms
        out[f"{key}_half_p99_ms"] = case.half_load.p99_ms
        out[f"{key}_router_cpu_ms"] = case.saturation.router_cpu_ms
    out["edge_grpc_rps_over_baseline"] = out["edge_grpc_rps"] / out["edge_baseline_rps"]
    out["load_average"] = os.getloadavg()[0]
    return out


def report(cases: list[Case], clients: int) -> None:
    print(
        f"router capacity, INSTANT tiers (instant in-process edge; replay cloud at zero "
        f"latency), {clients} clients from a separate process, all on this machine:"
    )
    print(
        f"  {'door':<8} {'route':<6} {'req/s':>7} {'p50':>6} {'p99':>6}   "
        f"{'half-load p50':>13} {'p99':>6}   router CPU ms/req (cloud)"
    )
    for case in cases:
        full, half = case.saturation, case.half_load
        print(
            f"  {case.door:<8} {case.route:<6} {full.rps:>7.0f} {full.p50_ms:>6.1f} "
            f"{full.p99_ms:>6.1f}   {half.p50_ms:>13.2f} {half.p99_ms:>6.2f}   "
            f"{full.router_cpu_ms:.3f} ({full.cloud_cpu_ms:.3f})"
        )
    for case in cases:
        if case.door == "baseline":
            continue
        target = TARGETS[case.route]
        for verdict, line in (
            (case.saturation.rps >= target, f"{case.door} {case.route} >= {target:.0f} req/s"),
            (
                case.half_load.p99_ms <= HALF_LOAD_P99_TARGET_MS,
                f"{case.door} {case.route} half-load p99 <= {HALF_LOAD_P99_TARGET_MS:.0f} ms",
            ),
        ):
            print(f"target {line}: {'met' if verdict else 'MISSED'}")


def run(*, quick: bool, clients: int, out: Path) -> int:
    seconds, passes = (4.0, 1) if quick else (10.0, 3)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sllm-bench-capacity-") as tmp:
        cases = measure(clients, seconds, passes, Path(tmp))
    report(cases, clients)
    headline_figures = figures(cases)
    write_json(
        out,
        "capacity",
        {
            "tiers": "instant (in-process edge that answers at once; replay cloud at 0 ms)",
            "baseline": "bare grpc.aio server answering a fixed RouteResponse (door 'baseline')",
            "clients": clients,
            "seconds_per_run": seconds,
            "passes": passes,
            "minutes": (time.monotonic() - started) / 60.0,
            "cases": [asdict(case) for case in cases],
            "figures": headline_figures,
        },
    )
    print(headline(headline_figures))
    return 0
