"""Request validation: a `RouteRequest` becomes a `Query`, or a message saying what to fix."""

from __future__ import annotations

import math
import re
from typing import TypeVar

from router.auth.access import request_tenant
from router.query import Query
from sllm.chat import ChatMessage
from sllm.enums import ANSWER_FORMATS, ROUTE_HINTS
from sllm.settings import TENANT_CHARS, RouterSettings
from sllm.v1 import router_pb2
from sllm.wire import InvalidRequest, messages_from_wire

_TENANT = re.compile(rf"{TENANT_CHARS}{{0,64}}")
MAX_TOKENS_LIMIT = 8192
T = TypeVar("T")
Number = TypeVar("Number", bound=int)
MAX_CLIENT_REQUEST_ID = 128


def _messages(request: router_pb2.RouteRequest, max_chars: int) -> list[ChatMessage]:
    if not request.messages:
        raise InvalidRequest("messages is empty: send at least one user message", field="messages")
    messages = messages_from_wire(request.messages)
    for i, message in enumerate(messages):
        if "\x00" in message.content:
            raise InvalidRequest(
                f"messages[{i}].content contains a NUL character", field=f"messages[{i}].content"
            )
    last = len(messages) - 1
    if messages[last].role != "user" or not messages[last].content.strip():
        raise InvalidRequest(
            f"messages[{last}]: the last message must be a non-empty ROLE_USER message",
            field=f"messages[{last}]",
        )
    total = sum(len(m.content) for m in messages)
    if total > max_chars:
        raise InvalidRequest(
            f"messages: the prompt is {total} characters long; the limit is {max_chars}",
            field="messages",
        )
    return messages


def _max_tokens(request: router_pb2.RouteRequest, default: int) -> int:
    if not request.HasField("max_tokens"):
        return default
    if not 0 < request.max_tokens <= MAX_TOKENS_LIMIT:
        raise InvalidRequest(
            f"max_tokens is {request.max_tokens}: it must be between 1 and {MAX_TOKENS_LIMIT}",
            field="max_tokens",
        )
    return request.max_tokens


def _latency_budget_ms(request: router_pb2.RouteRequest) -> int | None:
    if not request.HasField("latency_budget_ms"):
        return None
    if request.latency_budget_ms <= 0:
        raise InvalidRequest(
            f"latency_budget_ms is {request.latency_budget_ms}: it must be > 0 (or absent)",
            field="latency_budget_ms",
        )
    return request.latency_budget_ms


def _cost_ceiling_usd(request: router_pb2.RouteRequest) -> float | None:
    if not request.HasField("cost_ceiling_usd"):
        return None
    ceiling = request.cost_ceiling_usd
    if not math.isfinite(ceiling) or ceiling < 0:
        raise InvalidRequest(
            f"cost_ceiling_usd is {ceiling}: it must be a finite number >= 0",
            field="cost_ceiling_usd",
        )
    return ceiling


def _enum(table: dict[Number, T], value: Number, field: str) -> T:
    if value not in table:
        raise InvalidRequest(f"{field} is {value}, which is not a known value", field=field)
    return table[value]


def to_query(request: router_pb2.RouteRequest, settings: RouterSettings) -> Query:
    """Checks every field; raises `InvalidRequest` naming the first one that is wrong, or
    `Refused` when the request claims another tenant than its token's."""
    messages = _messages(request, settings.max_prompt_chars)
    route_hint = _enum(ROUTE_HINTS.names, request.route_hint, "route_hint")
    if request.local_only and route_hint == "CLOUD_ONLY":
        raise InvalidRequest(
            "local_only forbids the cloud but route_hint is ROUTE_HINT_CLOUD_ONLY: drop one",
            field="local_only",
        )
    if not _TENANT.fullmatch(request.tenant):
        raise InvalidRequest(
            "tenant must be at most 64 characters of letters, digits, '.', '_', ':' or '-'",
            field="tenant",
        )
    if len(request.client_request_id) > MAX_CLIENT_REQUEST_ID:
        raise InvalidRequest(
            f"client_request_id is longer than {MAX_CLIENT_REQUEST_ID} characters",
            field="client_request_id",
        )
    return Query(
        messages=messages,
        max_tokens=_max_tokens(request, settings.default_max_tokens),
        latency_budget_ms=_latency_budget_ms(request),
        cost_ceiling_usd=_cost_ceiling_usd(request),
        route_hint=route_hint,
        local_only=request.local_only,
        answer_format=_enum(ANSWER_FORMATS.names, request.answer_format, "answer_format"),
        tenant=request_tenant(request.tenant),
        client_request_id=request.client_request_id,
    )


def check_feedback(request: router_pb2.FeedbackRequest) -> None:
    if not request.request_id:
        raise InvalidRequest(
            "request_id is empty: send the request_id the router returned", field="request_id"
        )
    if not (math.isfinite(request.score) and 0.0 <= request.score <= 1.0):
        raise InvalidRequest(f"score is {request.score}: it must be in [0, 1]", field="score")
    if len(request.source) > 64:
        raise InvalidRequest("source is longer than 64 characters", field="source")
