"""Every error status of the HTTP door, in OpenAI's error shape, through the real `openai`
client: 400 with the gRPC door's own message, 404, 413, 429 with Retry-After, 503, 504."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx2
import openai
import pytest

from sllm.v1 import common_pb2, router_pb2
from tests.cloud.fault_proxy import Delay, FaultProxy, Status
from tests.fixtures.cloud import StandInServer
from tests.fixtures.edge import EdgeWorkerProcess
from tests.fixtures.router import CLOSED_PORT_TARGET, RouterFactory, RunningRouter, closed_cloud
from tests.http.conftest import OpenAIFor
from tests.http.requests import complete, user
from tests.router.requests import EASY, ask

JSON = {"content-type": "application/json"}
# (what the app sends through the SDK, the same mistake through gRPC, the error's param)
SAME_MISTAKES: list[tuple[dict[str, Any], router_pb2.RouteRequest, str]] = [
    ({"max_tokens": 0}, ask(max_tokens=0), "max_tokens"),
    ({"max_completion_tokens": 9000}, ask(max_tokens=9000), "max_tokens"),
    (
        {"messages": [{"role": "user", "content": EASY}, {"role": "assistant", "content": "Hm"}]},
        router_pb2.RouteRequest(
            messages=[
                common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=EASY),
                common_pb2.ChatMessage(role=common_pb2.ROLE_ASSISTANT, content="Hm"),
            ]
        ),
        "messages",
    ),
    ({"messages": []}, router_pb2.RouteRequest(), "messages"),
    (
        {"model": "sllm-cloud", "extra_body": {"sllm": {"local_only": True}}},
        ask(local_only=True, route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY),
        "sllm.local_only",
    ),
    (
        {"extra_body": {"sllm": {"latency_budget_ms": -5}}},
        ask(latency_budget_ms=-5),
        "sllm.latency_budget_ms",
    ),
    (
        {"extra_headers": {"x-sllm-cost-ceiling-usd": "-1"}},
        ask(cost_ceiling_usd=-1),
        "sllm.cost_ceiling_usd",
    ),
    ({"user": "two words"}, ask(tenant="two words"), "user"),
]


@pytest.fixture
async def no_tiers(router_factory: RouterFactory) -> RunningRouter:
    """Nothing answers behind this router: what is not refused at the door fails fast."""
    return await router_factory(
        edge_target=CLOSED_PORT_TARGET,
        cloud=closed_cloud(breaker_failure_threshold=1, breaker_cooldown_s=60.0),
        health_interval_s=0.05,
        http_max_body_bytes=4000,
        http=True,
    )


@pytest.mark.parametrize(("fields", "grpc_request", "param"), SAME_MISTAKES)
async def test_bad_input_is_400_with_the_grpc_doors_message(
    no_tiers: RunningRouter,
    openai_client: OpenAIFor,
    fields: dict[str, Any],
    grpc_request: router_pb2.RouteRequest,
    param: str,
) -> None:
    with pytest.raises(openai.BadRequestError) as http_error:
        await complete(openai_client(no_tiers), **fields)
    with pytest.raises(grpc.aio.AioRpcError) as grpc_error:
        await no_tiers.stub.Generate(grpc_request)
    assert grpc_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert http_error.value.message.endswith(grpc_error.value.details() or "?")
    assert isinstance(http_error.value.body, dict)
    assert http_error.value.body["message"] == grpc_error.value.details()
    assert http_error.value.type == "invalid_request_error"
    assert http_error.value.param == param


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0] is a 'image_url' part: sllm reads text parts only",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role: Input should be"),
        ({"max_tokens": "16"}, "max_tokens: Input should be a valid integer"),
        ({"n": 2}, "n is 2: sllm returns one choice"),
        ({"extra_headers": {"x-sllm-local-only": "perhaps"}}, "header x-sllm-local-only: "),
        ({"extra_body": {"sllm": {"answer_format": "ESSAY"}}}, "sllm.answer_format: Input should"),
    ],
)
async def test_what_only_http_can_get_wrong_is_400_naming_the_field(
    no_tiers: RunningRouter, openai_client: OpenAIFor, fields: dict[str, Any], says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        await complete(openai_client(no_tiers), **fields)
    assert says in error.value.message


async def test_a_body_that_is_not_json_is_400(no_tiers: RunningRouter) -> None:
    async with httpx2.AsyncClient(base_url=no_tiers.http_url) as http:
        response = await http.post("/v1/chat/completions", content=b"{nope", headers=JSON)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("the body is not valid JSON")


async def test_a_string_that_is_not_unicode_is_400(no_tiers: RunningRouter) -> None:
    # JSON can escape half a surrogate pair; protobuf (the gRPC request) cannot hold it.
    body = b'{"model": "sllm-auto", "messages": [{"role": "user", "content": "\\ud800"}]}'
    async with httpx2.AsyncClient(base_url=no_tiers.http_url) as http:
        response = await http.post("/v1/chat/completions", content=body, headers=JSON)
        untyped = await http.post("/v1/chat/completions", content=b"{}")
    assert response.status_code == 400
    assert "not valid Unicode" in response.json()["error"]["message"]
    assert "Content-Type: application/json" in untyped.json()["error"]["message"]


async def test_an_unknown_model_or_path_is_404(
    no_tiers: RunningRouter, openai_client: OpenAIFor
) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        await complete(openai_client(no_tiers), model="gpt-4o")
    assert error.value.code == "model_not_found" and error.value.param == "model"
    assert "use sllm-auto, sllm-edge or sllm-cloud" in error.value.message
    async with httpx2.AsyncClient(base_url=no_tiers.http_url) as http:
        response = await http.get("/v1/engines")
    assert response.status_code == 404 and "message" in response.json()["error"]


async def test_a_body_over_the_limit_is_413_declared_or_not(
    no_tiers: RunningRouter, openai_client: OpenAIFor
) -> None:
    with pytest.raises(openai.APIStatusError) as error:
        await complete(openai_client(no_tiers), messages=user("x" * 5000))
    assert error.value.status_code == 413 and error.value.code == "request_too_large"

    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"model": "sllm-auto", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}]}'

    async with httpx2.AsyncClient(base_url=no_tiers.http_url) as http:
        response = await http.post("/v1/chat/completions", content=chunked())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert "router.http_max_body_bytes" in response.json()["error"]["message"]


async def test_no_tier_answering_is_503_unary_streamed_and_in_health(
    no_tiers: RunningRouter, openai_client: OpenAIFor
) -> None:
    client = openai_client(no_tiers)
    with pytest.raises(openai.InternalServerError) as unary:
        await complete(client)
    assert unary.value.status_code == 503 and unary.value.code == "no_tier_available"
    assert "the cloud failed" in unary.value.message
    # A stream that cannot start is an error status too, not a broken stream.
    with pytest.raises(openai.InternalServerError) as streamed:
        await complete(client, stream=True)
    assert streamed.value.status_code == 503
    async with httpx2.AsyncClient(base_url=no_tiers.http_url) as http:
        for _ in range(100):
            health = await http.get("/healthz")
            if health.status_code == 503:
                break
            await asyncio.sleep(0.05)
    assert health.status_code == 503
    assert health.json() == {"ready": False, "edge": False, "cloud": False}


@pytest.mark.slow
async def test_healthz_is_ready_when_a_tier_can_answer(real_router: RouterFactory) -> None:
    router = await real_router(http=True)
    async with httpx2.AsyncClient(base_url=router.http_url) as http:
        health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["ready"]


async def _busy(router: RunningRouter) -> Callable[[], None]:
    """Keeps the router's queue-less edge worker busy with a long story until called."""
    story = ask("Write a long story about a dragon.", max_tokens=400, local_only=True)
    long = router.stub.GenerateStream(story)
    assert (await long.read()).WhichOneof("event") == "delta"
    return long.cancel


@pytest.mark.slow
async def test_a_busy_edge_and_a_rate_limited_cloud_are_429_with_retry_after(
    router_factory: RouterFactory,
    edge_worker_factory: Callable[..., EdgeWorkerProcess],
    standin_server: StandInServer,
    proxy: FaultProxy,
    openai_client: OpenAIFor,
) -> None:
    edge = edge_worker_factory("--queue-size", "0")
    cloud = standin_server.settings(base_url=proxy.base_url, max_attempts=1)
    router = await router_factory(edge_target=edge.target, cloud=cloud, pre=0.0, http=True)
    client = openai_client(router)
    stop = await _busy(router)
    proxy.inject(Status(429, retry_after="3"))
    with pytest.raises(openai.RateLimitError) as both:
        await complete(client)
    assert both.value.response.headers["retry-after"] == "3"
    assert both.value.code == "rate_limit_exceeded"
    assert "RESOURCE_EXHAUSTED" in both.value.message and "rate limited" in both.value.message
    # The edge alone busy, and the cloud not allowed: retrying later helps too.
    with pytest.raises(openai.RateLimitError) as local:
        await complete(client, extra_body={"sllm": {"local_only": True}})
    assert local.value.response.headers["retry-after"] == "1"
    stop()


@pytest.mark.slow
async def test_a_cloud_past_the_deadline_is_504(
    router_factory: RouterFactory,
    standin_server: StandInServer,
    proxy: FaultProxy,
    openai_client: OpenAIFor,
) -> None:
    cloud = standin_server.settings(base_url=proxy.base_url, max_attempts=1)
    router = await router_factory(edge_target=CLOSED_PORT_TARGET, cloud=cloud, http=True)
    proxy.inject(Delay(5.0))
    with pytest.raises(openai.InternalServerError) as error:
        await complete(
            openai_client(router),
            model="sllm-cloud",
            extra_body={"sllm": {"latency_budget_ms": 1500}},
        )
    assert error.value.status_code == 504 and error.value.code == "deadline_exceeded"
    assert "deadline" in error.value.message
