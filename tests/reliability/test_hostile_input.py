"""Hostile input on every RPC of the Router and EdgeWorker services and on the HTTP door
(bench/fuzz: random unicode, invalid UTF-8 as raw bytes, huge and empty strings, control
characters, NaN and huge numbers, unknown enum values, 0 or thousands of messages, bytes
that are no message): only OK or a documented status whose message names the field, none
slower than the call's timeout, and both servers healthy and answering afterwards. The
quick profile; `sllm bench fuzz` is the long run (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import strategies as st

from bench.fuzz.hostile import edge_calls, http_calls, router_calls
from bench.fuzz.run import Targets, fuzz
from sllm.v1 import router_pb2_grpc
from tests.fakes.model import ScriptedModel, steps
from tests.fixtures.cloud import free_port
from tests.fixtures.scripted_edge import serving_scripted_edge
from tests.reliability.children import start_router_child
from tests.router.requests import EASY, ask

# About 20 s here, on 2 shared cores.
EXAMPLES = 300


async def _serving(target: str) -> bool:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _ask_http(base_url: str) -> Any:
    body = {"model": "sllm-auto", "messages": [{"role": "user", "content": EASY}]}
    request = urllib.request.Request(
        f"{base_url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def test_hostile_requests_get_only_documented_statuses(tmp_path: Path) -> None:
    async with serving_scripted_edge(ScriptedModel(steps("Paris"))) as edge:
        router = await start_router_child(
            edge, tmp_path, tmp_path / "outcomes.sqlite3", http_port=str(free_port())
        )
        try:
            [listening] = router.events("router.listening")
            targets = Targets(router=router.target, edge=edge, http=listening["http"])
            calls = st.one_of(router_calls(), edge_calls(), http_calls())
            # The edge serves on this loop: the blocking client runs in a thread.
            tally = await asyncio.wait_for(
                asyncio.to_thread(
                    fuzz, targets, calls, EXAMPLES, stop_at_first=True, derandomize=True
                ),
                timeout=300,
            )
            assert tally.violations == []
            assert tally.tried == EXAMPLES
            seen = {status for _, status in tally.statuses}
            assert "DEADLINE_EXCEEDED" not in seen, tally.statuses
            # The run got past validation, not only into it.
            assert {"OK", "INVALID_ARGUMENT", "400"} <= seen, tally.statuses

            assert router.process.poll() is None
            assert await _serving(router.target) and await _serving(edge)
            async with grpc.aio.insecure_channel(router.target) as channel:
                answer = await router_pb2_grpc.RouterStub(channel).Generate(ask(), timeout=10)
            assert answer.text == "Paris"
            reply = await asyncio.to_thread(_ask_http, listening["http"])
            assert reply["choices"][0]["message"]["content"] == "Paris"
        finally:
            router.stop()
