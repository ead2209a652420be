"""Request builders shared by the router's tests."""

from __future__ import annotations

from typing import Any

from sllm.v1 import common_pb2, router_pb2

EASY = "What is the capital of France? Answer in one word."


def ask(text: str = EASY, **fields: Any) -> router_pb2.RouteRequest:
    fields.setdefault("max_tokens", 16)
    return router_pb2.RouteRequest(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)], **fields
    )


def route_name(response: router_pb2.RouteResponse) -> str:
    return router_pb2.Route.Name(response.route).removeprefix("ROUTE_")
