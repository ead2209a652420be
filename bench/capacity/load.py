"""The load generator: `python -m bench.capacity.load`, a process of its own so that its
work is not the router's. N clients on 127.0.0.1, each on its own connection, send one
short request at a time (`--rate`: at a fixed rate, each request at its scheduled time, at
most N in flight), until `--requests` are answered or `--seconds` have passed. Prints one
JSON line: latencies (ms, from the request's scheduled time when a rate is set, so a late
start counts), errors, elapsed seconds and this process's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from bench.http import BareHttp
from bench.router import ONE_TOKEN_QUESTION
from sllm.v1 import common_pb2, router_pb2, router_pb2_grpc

# Enough tokens for the instant edge's and the replay cloud's one-word answers.
MAX_TOKENS = 16
HINTS = {"EDGE": router_pb2.ROUTE_HINT_EDGE_ONLY, "CLOUD": router_pb2.ROUTE_HINT_CLOUD_ONLY}
_MODELS = {"EDGE": "sllm-edge", "CLOUD": "sllm-cloud"}

Call = Callable[[], Awaitable[None]]


def http_body(route: str) -> bytes:
    return json.dumps(
        {
            "model": _MODELS[route],
            "messages": [{"role": "user", "content": ONE_TOKEN_QUESTION}],
            "max_tokens": MAX_TOKENS,
        }
    ).encode()


def grpc_request(route: str) -> tuple[router_pb2.RouteRequest, int]:
    """The 1-word request pinned to `route` ("EDGE" or "CLOUD"), and the route the reply
    must name."""
    message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=ONE_TOKEN_QUESTION)
    request = router_pb2.RouteRequest(
        messages=[message], max_tokens=MAX_TOKENS, route_hint=HINTS[route]
    )
    return request, router_pb2.Route.Value(f"ROUTE_{route}")


async def grpc_clients(target: str, route: str, count: int) -> list[Call]:
    request, expected = grpc_request(route)

    def client() -> Call:
        stub = router_pb2_grpc.RouterStub(grpc.aio.insecure_channel(target))

        async def call() -> None:
            reply = await stub.Generate(request, timeout=30)
            if reply.route != expected:
                raise RuntimeError(f"routed {reply.route}: {reply.decision.reason}")

        return call

    return [client() for _ in range(count)]


async def http_clients(port: int, route: str, count: int) -> list[Call]:
    body, expected = http_body(route), f"\r\nx-sllm-route: {route}\r\n".encode()

    async def client() -> Call:
        bare = BareHttp(*await asyncio.open_connection("127.0.0.1", port), body=body)

        async def call() -> None:
            head = await bare.post()
            if not head.startswith(b"HTTP/1.1 200") or expected not in head:
                raise RuntimeError(head.decode(errors="replace"))

        return call

    return [await client() for _ in range(count)]


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def closed_loop(clients: list[Call], requests: int, seconds: float) -> Results:
    """Each client sends its next request as soon as the last one is answered."""
    results, end = Results(), time.monotonic() + seconds
    issued = 0

    async def drive(call: Call) -> None:
        nonlocal issued
        while issued < requests and time.monotonic() <= end:
            issued += 1
            started = time.perf_counter()
            try:
                await call()
                results.latencies_ms.append((time.perf_counter() - started) * 1000.0)
            except Exception as error:  # counted, and the run goes on
                results.errors.append(repr(error)[:200])

    await asyncio.gather(*(drive(call) for call in clients))
    return results


async def open_loop(clients: list[Call], requests: int, seconds: float, rate: float) -> Results:
    """Request i is due at i / rate; it waits for a free client when all are busy, and that
    wait counts in its latency (a slow router is not let off by sending less)."""
    results, free = Results(), asyncio.Queue[Call]()
    for call in clients:
        free.put_nowait(call)
    start = time.perf_counter()
    count = min(requests, int(seconds * rate))

    async def one(due: float) -> None:
        call = await free.get()
        try:
            await call()
            results.latencies_ms.append((time.perf_counter() - due) * 1000.0)
        except Exception as error:
            results.errors.append(repr(error)[:200])
        finally:
            free.put_nowait(call)

    tasks = []
    for i in range(count):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--door", choices=("grpc", "http"), required=True)
    parser.add_argument("--target", required=True, help="host:port of that door")
    parser.add_argument("--route", choices=tuple(HINTS), required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--rate", type=float, default=None, help="requests/s; default: closed loop")
    args = parser.parse_args()
    if args.door == "grpc":
        clients = await grpc_clients(args.target, args.route, args.clients)
    else:
        clients = await http_clients(int(args.target.rsplit(":", 1)[1]), args.route, args.clients)
    started, cpu = time.perf_counter(), time.process_time()
    if args.rate is None:
        results = await closed_loop(clients, args.requests, args.seconds)
    else:
        results = await open_loop(clients, args.requests, args.seconds, args.rate)
    report = {
        "latencies_ms": results.latencies_ms,
        "errors": results.errors,
        "elapsed_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
