"""One router behind both doors: the same request through gRPC and HTTP gets the same
route and reason, lands in the same outcome log and takes the same Feedback."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import grpc
import httpx2
import pytest

from sllm.v1 import router_pb2
from tests.http.conftest import DoorFactory
from tests.http.requests import complete, sllm_field, user
from tests.router.requests import EASY, ask, route_name

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("pre", "cascade", "options"),
    [
        (0.0, 0.0, {}),
        (0.0, 1.0, {}),
        (1.0, 0.0, {}),
        (1.0, 0.0, {"local_only": True}),
    ],
)
async def test_grpc_and_http_give_the_same_route_and_reason(
    door: DoorFactory,
    pre: float,
    cascade: float,
    options: dict[str, Any],
) -> None:
    router, client = await door(pre=pre, cascade=cascade)
    over_grpc = await router.stub.Generate(ask(EASY, max_tokens=16, **options))
    over_http = await client.chat.completions.with_raw_response.create(
        model="sllm-auto", messages=user(EASY), max_tokens=16, extra_body={"sllm": options}
    )
    decision = sllm_field(over_http.parse())
    assert over_http.headers["x-sllm-route"] == decision["route"] == route_name(over_grpc)
    assert decision["decision"]["reason"] == over_grpc.decision.reason


async def test_both_doors_log_to_one_outcome_log_and_take_feedback(door: DoorFactory) -> None:
    router, client = await door(pre=0.0, cascade=0.0)
    answer = await complete(client, max_tokens=8)
    await router.stub.Generate(ask())
    async with httpx2.AsyncClient(base_url=router.http_url) as http:
        for _ in range(100):
            given = await http.post("/v1/feedback", json={"request_id": answer.id, "score": 0.9})
            if given.status_code != 404:  # the log is written off the hot path
                break
            await asyncio.sleep(0.05)
        unknown = await http.post("/v1/feedback", json={"request_id": "nope", "score": 1.0})
        out_of_range = await http.post("/v1/feedback", json={"request_id": answer.id, "score": 1.5})
    assert given.status_code == 200
    assert unknown.status_code == 404
    assert out_of_range.status_code == 400
    with pytest.raises(grpc.aio.AioRpcError) as grpc_error:
        await router.stub.Feedback(router_pb2.FeedbackRequest(request_id=answer.id, score=1.5))
    assert out_of_range.json()["error"]["message"] == grpc_error.value.details()
    await router.server.stop(grace_s=0)
    with sqlite3.connect(router.db) as db:
        logged = {row[0] for row in db.execute("SELECT request_id FROM decisions")}
        scored = db.execute("SELECT request_id, score, source FROM feedback").fetchall()
    assert answer.id in logged and len(logged) == 2
    assert scored == [(answer.id, 0.9, "user")]
