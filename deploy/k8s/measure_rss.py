"""Measures the memory (RSS) of the processes the Kubernetes manifests size: an edge worker
(`sllm edge serve`), a router calling it over gRPC, and a router with the edge in its own
process, at idle and under a short concurrent load. deploy/README.md has the figures.

    python deploy/k8s/measure_rss.py [--requests 48] [--concurrency 8] [--json PATH]

Starts a cloud stand-in, the edge worker and both routers on free ports of 127.0.0.1 (the
outcome logs in a temporary directory), waits until each answers gRPC health, reads
VmRSS after 5 s of idle, then sends Generate calls from `--concurrency` clients to each
router in turn (a third each AUTO, EDGE_ONLY, CLOUD_ONLY; short and ~1,000-token prompts),
sampling VmRSS every 0.1 s; VmHWM (the kernel's peak RSS) is read at the end. Everything
it started is stopped when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sllm.v1 import common_pb2, router_pb2, router_pb2_grpc

SLLM = [sys.executable, "-m", "sllm"]
PROMPTS = (
    "What is 12 + 30?",
    "Is the Pacific larger than the Atlantic? Answer yes or no.",
    "Name three primary colours.",
    # About 1,000 tokens: the edge's prompt reading at a realistic length.
    "Summarise in one sentence: " + "The quick brown fox jumps over the lazy dog. " * 100,
)
HINTS = ("ROUTE_HINT_AUTO", "ROUTE_HINT_EDGE_ONLY", "ROUTE_HINT_CLOUD_ONLY")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def wait_serving(port: int, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"127.0.0.1:{port} not serving after {timeout_s:.0f} s")
            await asyncio.sleep(0.25)


async def load(port: int, requests: int, concurrency: int) -> dict[str, int]:
    """Sends `requests` Generate calls from `concurrency` clients; counts the routes."""
    routes: dict[str, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = router_pb2_grpc.RouterStub(channel)

        async def client() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                request = router_pb2.RouteRequest(
                    messages=[
                        common_pb2.ChatMessage(
                            role=common_pb2.ROLE_USER, content=PROMPTS[i % len(PROMPTS)]
                        )
                    ],
                    route_hint=router_pb2.RouteHint.Value(HINTS[i % len(HINTS)]),
                    max_tokens=64,
                    latency_budget_ms=60_000,
                )
                try:
                    reply = await stub.Generate(request, timeout=90)
                    route = router_pb2.Route.Name(reply.route)
                except grpc.aio.AioRpcError as error:
                    route = error.code().name
                routes[route] = routes.get(route, 0) + 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return routes


class Sampler:
    """Peak VmRSS of some processes, sampled every 0.1 s while running."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)

    async def run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], status_kib(pid, "VmRSS"))
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def started(commands: dict[str, tuple[list[str], dict[str, str]]]) -> Iterator[dict[str, int]]:
    processes: list[subprocess.Popen[bytes]] = []
    pids: dict[str, int] = {}
    try:
        for name, (command, env) in commands.items():
            process = subprocess.Popen(
                command,
                env={**os.environ, "SLLM_LOG__LEVEL": "warning", **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(process)
            pids[name] = process.pid
        yield pids
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="per router")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path, help="also write the figures here (KiB)")
    args = parser.parse_args()
    ports = {name: free_port() for name in ("cloud", "edge", "edge_m", "r", "r_m", "ri", "ri_m")}
    cloud = {
        "SLLM_CLOUD__BASE_URL": f"http://127.0.0.1:{ports['cloud']}/v1",
        "SLLM_CLOUD__MODEL": "standin",
        "SLLM_ROUTER__HTTP_PORT": "0",
    }
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "cloud stand-in": ([*SLLM, "cloud", "standin", "--port", str(ports["cloud"])], {}),
            "edge worker": (
                [
                    *SLLM,
                    "edge",
                    "serve",
                    "--port",
                    str(ports["edge"]),
                    "--metrics-port",
                    str(ports["edge_m"]),
                ],
                {},
            ),
            "router (edge over gRPC)": (
                [
                    *SLLM,
                    "router",
                    "serve",
                    "--port",
                    str(ports["r"]),
                    "--edge",
                    f"127.0.0.1:{ports['edge']}",
                ],
                {
                    **cloud,
                    "SLLM_ROUTER__METRICS_PORT": str(ports["r_m"]),
                    "SLLM_ROUTER__OUTCOME_DB": f"{tmp}/r.sqlite3",
                },
            ),
            "router (edge in-process)": (
                [*SLLM, "router", "serve", "--port", str(ports["ri"]), "--edge", "in-process"],
                {
                    **cloud,
                    "SLLM_ROUTER__METRICS_PORT": str(ports["ri_m"]),
                    "SLLM_ROUTER__OUTCOME_DB": f"{tmp}/ri.sqlite3",
                },
            ),
        }
        with started(commands) as pids:
            await asyncio.gather(
                *(wait_serving(ports[p]) for p in ("edge", "r", "ri")), wait_cloud(ports["cloud"])
            )
            await asyncio.sleep(5)
            measured = {name: pid for name, pid in pids.items() if name != "cloud stand-in"}
            idle = {name: status_kib(pid, "VmRSS") for name, pid in measured.items()}
            sampler = Sampler(measured)
            sampling = asyncio.create_task(sampler.run())
            started_at = time.monotonic()
            routes = {
                name: await load(ports[port], args.requests, args.concurrency)
                for name, port in (
                    ("router (edge over gRPC)", "r"),
                    ("router (edge in-process)", "ri"),
                )
            }
            seconds = time.monotonic() - started_at
            sampling.cancel()
            hwm = {name: status_kib(pid, "VmHWM") for name, pid in measured.items()}
    print(
        f"load: {args.requests} Generate calls per router, {args.concurrency} clients, "
        f"{seconds:.0f} s in all; routes {routes}"
    )
    print(f"{'process':<28}{'idle RSS':>10}{'load RSS':>10}{'VmHWM':>8}  (MiB)")
    for name in measured:
        print(f"{name:<28}{mib(idle[name]):>10}{mib(sampler.peak[name]):>10}{mib(hwm[name]):>8}")
    if args.json is not None:
        figures = {
            name: {"idle_kib": idle[name], "load_kib": sampler.peak[name], "hwm_kib": hwm[name]}
            for name in measured
        }
        report = {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "load_seconds": seconds,
            "routes": routes,
            "processes": figures,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


async def wait_cloud(port: int, timeout_s: float = 180.0) -> None:
    """The stand-in answers HTTP once its model is loaded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(2)  # the port opens as the model finishes loading
            return
        except OSError:
            await asyncio.sleep(0.25)
    raise TimeoutError(f"the stand-in on {port} did not start in {timeout_s:.0f} s")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
