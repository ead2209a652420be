"""Every malformed request field is INVALID_ARGUMENT with a message saying what to fix,
before any tier is called (neither tier is even reachable here)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from sllm.v1 import common_pb2, router_pb2
from tests.fixtures.router import CLOSED_PORT_TARGET, RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask


@pytest.fixture
async def router(router_factory: RouterFactory) -> RunningRouter:
    return await router_factory(edge_target=CLOSED_PORT_TARGET, cloud=closed_cloud())


def _message(role: int, content: str) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(role=role, content=content)


MALFORMED: dict[str, tuple[router_pb2.RouteRequest, str]] = {
    "no messages": (router_pb2.RouteRequest(), "messages is empty"),
    "unspecified role": (
        router_pb2.RouteRequest(messages=[_message(common_pb2.ROLE_UNSPECIFIED, "hi")]),
        "messages[0].role is 0",
    ),
    "unknown role": (
        router_pb2.RouteRequest(messages=[_message(7, "hi")]),
        "messages[0].role is 7",
    ),
    "last message not the user's": (
        router_pb2.RouteRequest(
            messages=[
                _message(common_pb2.ROLE_USER, "hi"),
                _message(common_pb2.ROLE_ASSISTANT, "yo"),
            ]
        ),
        "the last message must be a non-empty ROLE_USER message",
    ),
    "blank question": (ask("   "), "non-empty ROLE_USER"),
    "NUL in content": (ask("a\x00b"), "messages[0].content contains a NUL"),
    "prompt too long": (ask("x" * 40_000), "the prompt is 40000 characters long"),
    "zero max_tokens": (ask(max_tokens=0), "max_tokens is 0"),
    "huge max_tokens": (ask(max_tokens=1_000_000), "max_tokens is 1000000"),
    "negative budget": (ask(latency_budget_ms=-5), "latency_budget_ms is -5"),
    "zero budget": (ask(latency_budget_ms=0), "latency_budget_ms is 0"),
    "negative cost ceiling": (ask(cost_ceiling_usd=-0.01), "cost_ceiling_usd is -0.01"),
    "NaN cost ceiling": (ask(cost_ceiling_usd=float("nan")), "cost_ceiling_usd is nan"),
    "unknown route hint": (ask(route_hint=9), "route_hint is 9"),
    "unknown answer format": (ask(answer_format=42), "answer_format is 42"),
    "local_only with CLOUD_ONLY": (
        ask(local_only=True, route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY),
        "local_only forbids the cloud",
    ),
    "bad tenant": (ask(tenant="a tenant with spaces"), "tenant must be"),
    "long client_request_id": (ask(client_request_id="x" * 200), "client_request_id is longer"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
async def test_malformed_requests_are_invalid_argument(router: RunningRouter, case: str) -> None:
    request, message = MALFORMED[case]
    for call in (router.stub.Generate, _first_stream_event(router)):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call(request)
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (failed.value.details() or "")


def _first_stream_event(router: RunningRouter) -> Any:
    async def call(request: router_pb2.RouteRequest) -> Any:
        async for event in router.stub.GenerateStream(request):
            return event
        return None

    return call


async def test_invalid_utf8_is_invalid_argument_not_internal(router: RunningRouter) -> None:
    # Protobuf refuses to build such a message, so the bytes are sent as they are: field 1
    # (messages) holding a ChatMessage whose content (field 2) is b"\xff\xfe".
    chat = bytes([0x08, 0x02, 0x12, 0x02, 0xFF, 0xFE])
    raw = bytes([0x0A, len(chat)]) + chat
    generate = router.channel.unary_unary(
        "/sllm.v1.Router/Generate",
        request_serializer=lambda payload: payload,
        response_deserializer=lambda payload: payload,
    )
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await generate(raw)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "valid UTF-8" in (failed.value.details() or "")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (router_pb2.FeedbackRequest(score=1.0), "request_id is empty"),
        (router_pb2.FeedbackRequest(request_id="r", score=1.5), "score is 1.5"),
        (router_pb2.FeedbackRequest(request_id="r", score=float("nan")), "score is nan"),
        (router_pb2.FeedbackRequest(request_id="r", score=1.0, source="s" * 100), "source is"),
    ],
)
async def test_malformed_feedback_is_invalid_argument(
    router: RunningRouter, request_: router_pb2.FeedbackRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await router.stub.Feedback(request_)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (failed.value.details() or "")
