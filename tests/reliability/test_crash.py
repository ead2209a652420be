"""A router SIGKILLed under steady load loses no answered request: restarted on the same
outcome log, every request id its clients were answered has its row, the file passes
SQLite's integrity check, and Feedback for each of them succeeds (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import grpc

from sllm.v1 import router_pb2, router_pb2_grpc
from tests.fakes.model import ScriptedModel, steps
from tests.fixtures.scripted_edge import serving_scripted_edge
from tests.reliability.children import start_router_child
from tests.router.requests import ask

CLIENTS = 8
# Answers counted before the kill: well into steady load, whatever the machine's speed.
ANSWERED_BEFORE_KILL = 300


async def _client(target: str, answered: list[str], enough: asyncio.Event) -> None:
    """Asks until the router is gone; keeps the request id of every answer received."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        while True:
            try:
                response = await stub.Generate(ask(max_tokens=4), timeout=10)
            except grpc.aio.AioRpcError:
                return
            answered.append(response.request_id)
            if len(answered) >= ANSWERED_BEFORE_KILL:
                enough.set()


def _logged_ids_and_integrity(db: Path) -> tuple[set[str], str]:
    with sqlite3.connect(db) as connection:
        ids = {row[0] for row in connection.execute("SELECT request_id FROM decisions")}
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    return ids, str(integrity)


async def _feedback_statuses(target: str, request_ids: list[str]) -> dict[str, int]:
    statuses: dict[str, int] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        for request_id in request_ids:
            try:
                await stub.Feedback(
                    router_pb2.FeedbackRequest(request_id=request_id, score=1.0), timeout=10
                )
                code = "OK"
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            statuses[code] = statuses.get(code, 0) + 1
    return statuses


async def test_sigkill_under_load_loses_no_answered_request(tmp_path: Path) -> None:
    db = tmp_path / "outcomes.sqlite3"
    async with serving_scripted_edge(ScriptedModel(steps("Paris"))) as edge:
        router = await start_router_child(edge, tmp_path, db)
        try:
            answered: list[str] = []
            enough = asyncio.Event()
            clients = [
                asyncio.create_task(_client(router.target, answered, enough))
                for _ in range(CLIENTS)
            ]
            await asyncio.wait_for(enough.wait(), timeout=120)
            os.kill(router.process.pid, signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*clients), timeout=30)
            assert await asyncio.to_thread(router.process.wait, 30) == -signal.SIGKILL
        finally:
            router.stop()

        restarted = await start_router_child(edge, tmp_path, db)
        try:
            logged, integrity = _logged_ids_and_integrity(db)
            assert integrity == "ok"
            lost = set(answered) - logged
            assert len(answered) >= ANSWERED_BEFORE_KILL and not lost, (
                f"{len(lost)} of {len(answered)} answered requests have no row"
            )
            statuses = await asyncio.wait_for(
                _feedback_statuses(restarted.target, answered), timeout=120
            )
            assert statuses == {"OK": len(answered)}
        finally:
            restarted.stop()
