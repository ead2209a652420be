"""`sllm bench http`: what the HTTP door adds over the gRPC door for the same 1-token
request to the same router: one `sllm router serve` process with the edge in it (`sllm
up`'s layout) and both doors. Each round sends the request through gRPC (grpc.aio), then
through HTTP twice: a bare HTTP/1.1 client on a kept-alive connection (the door's own
cost: as little client work as gRPC's C core does) and httpx2 (the openai SDK's HTTP
client: what an app pays). added = p50(HTTP) - p50(gRPC); paired: the median of the
per-round differences.

The last line prints the headline figures as key=value pairs.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import httpx2

from bench.results import percentile
from bench.router import (
    ONE_TOKEN_QUESTION,
    free_port,
    print_verdicts,
    router_process,
    wait_serving,
)
from sllm.settings import IN_PROCESS
from sllm.v1 import common_pb2, router_pb2, router_pb2_grpc

TARGETS = {"added_p50_ms": 1.0}
WARM_UP_ROUNDS = 10
BODY = json.dumps(
    {
        "model": "sllm-auto",
        "messages": [{"role": "user", "content": ONE_TOKEN_QUESTION}],
        "max_tokens": 1,
        "sllm": {"local_only": True},
    }
).encode()


class BareHttp:
    """POSTs a request (`body`: a chat completion's) on one kept-alive connection and reads
    the whole answer."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, body: bytes = BODY
    ) -> None:
        self._reader, self._writer = reader, writer
        self._request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    async def post(self) -> bytes:
        """The response's head (status line and headers)."""
        self._writer.write(self._request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        await self._reader.readexactly(length)
        return head

    def close(self) -> None:
        self._writer.close()


async def measure(
    grpc_target: str, http_url: str, port: int, rounds: int
) -> dict[str, list[float]]:
    """Milliseconds per call through each door and client, in alternating rounds."""
    message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=ONE_TOKEN_QUESTION)
    request = router_pb2.RouteRequest(messages=[message], max_tokens=1, local_only=True)
    samples: dict[str, list[float]] = {"grpc": [], "http": [], "httpx": []}
    bare = BareHttp(*await asyncio.open_connection("127.0.0.1", port))
    async with (
        grpc.aio.insecure_channel(grpc_target) as channel,
        httpx2.AsyncClient(base_url=http_url, headers={"content-type": "application/json"}) as http,
    ):
        stub = router_pb2_grpc.RouterStub(channel)
        for i in range(rounds + WARM_UP_ROUNDS):
            started = time.perf_counter()
            reply = await stub.Generate(request)
            grpc_ms = (time.perf_counter() - started) * 1000.0
            started = time.perf_counter()
            head = await bare.post()
            http_ms = (time.perf_counter() - started) * 1000.0
            started = time.perf_counter()
            answer = await http.post("/v1/chat/completions", content=BODY)
            httpx_ms = (time.perf_counter() - started) * 1000.0
            assert reply.route == router_pb2.ROUTE_EDGE, reply.decision.reason
            assert b"\r\nx-sllm-route: EDGE\r\n" in head, head
            assert answer.headers["x-sllm-route"] == "EDGE", answer.text
            if i >= WARM_UP_ROUNDS:
                samples["grpc"].append(grpc_ms)
                samples["http"].append(http_ms)
                samples["httpx"].append(httpx_ms)
    bare.close()
    return samples


async def _main(quick: bool) -> int:
    rounds = 100 if quick else 500
    http_port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="sllm-bench-http-") as tmp,
        router_process(IN_PROCESS, Path(tmp) / "router", http_port=http_port) as target,
    ):
        await wait_serving(target)
        samples = await measure(target, f"http://127.0.0.1:{http_port}", http_port, rounds)
    over_grpc = samples["grpc"]
    figures = {}
    for name, calls in samples.items():
        figures[f"{name}_p50_ms"] = statistics.median(calls)
        figures[f"{name}_p99_ms"] = percentile(calls, 0.99)
    for name in ("http", "httpx"):
        key = "added" if name == "http" else "added_httpx"
        figures[f"{key}_p50_ms"] = figures[f"{name}_p50_ms"] - figures["grpc_p50_ms"]
        figures[f"{key}_paired_p50_ms"] = statistics.median(
            mine - theirs for mine, theirs in zip(samples[name], over_grpc, strict=True)
        )
    print(f"1-token request, one router (edge in its process), {rounds} rounds alternating:")
    for name, label in (
        ("grpc", "gRPC door, grpc.aio"),
        ("http", "HTTP door, bare HTTP/1.1"),
        ("httpx", "HTTP door, httpx2"),
    ):
        print(
            f"  {label:<25} p50 {figures[f'{name}_p50_ms']:.2f} ms  "
            f"p99 {figures[f'{name}_p99_ms']:.2f} ms"
        )
    print(
        f"  the HTTP door adds p50 {figures['added_p50_ms']:.2f} ms (paired "
        f"{figures['added_paired_p50_ms']:.2f}); with httpx2 as the client "
        f"{figures['added_httpx_p50_ms']:.2f} ms "
        f"(paired {figures['added_httpx_paired_p50_ms']:.2f})"
    )
    print_verdicts(figures, TARGETS)
    return 0


def run(quick: bool) -> int:
    return asyncio.run(_main(quick))
