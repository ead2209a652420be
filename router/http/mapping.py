"""OpenAI's chat completion request to a `Query`, through the gRPC door's own validation
(the body becomes the same `RouteRequest`), and a `RouteResult` back to OpenAI's response
with the decision record, as gRPC sends it, in an `sllm` field."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from pydantic import ValidationError

from router import wire
from router.http.errors import HttpError, bad_request
from router.http.schema import ChatCompletionRequest, Message, SllmOptions
from router.query import Query, RouteHint
from router.record import RouteResult
from router.validate import to_query
from sllm.enums import ANSWER_FORMATS, ROUTE_HINTS
from sllm.settings import RouterSettings
from sllm.v1 import common_pb2, router_pb2
from sllm.wire import InvalidRequest

MODELS: dict[str, RouteHint] = {
    "sllm-auto": "AUTO",
    "sllm-edge": "EDGE_ONLY",
    "sllm-cloud": "CLOUD_ONLY",
}
_ROLES = {
    "system": common_pb2.ROLE_SYSTEM,
    "developer": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
}
HEADER_PREFIX = "x-sllm-"
# The field a validation message starts with, and where that field is in an HTTP request.
_PARAMS = {
    "messages": "messages",
    "max_tokens": "max_tokens",
    "latency_budget_ms": "sllm.latency_budget_ms",
    "cost_ceiling_usd": "sllm.cost_ceiling_usd",
    "local_only": "sllm.local_only",
    "tenant": "user",
    "client_request_id": "sllm.client_request_id",
}
_EXITS_AT_A_LIMIT = (common_pb2.EXIT_REASON_BUDGET, common_pb2.EXIT_REASON_LENGTH)
_UNSENDABLE = re.compile(r"[\x00-\x1f\x7f]")


def header_name(option: str) -> str:
    return HEADER_PREFIX + option.replace("_", "-")


def options(body: SllmOptions, headers: Mapping[str, str]) -> SllmOptions:
    """The body's `sllm` object, each field overridden by its `x-sllm-*` header: a gateway
    in front of the app sets headers, and has the last word."""
    given = {
        name: headers[header_name(name)]
        for name in SllmOptions.model_fields
        if header_name(name) in headers
    }
    try:
        from_headers = SllmOptions.model_validate(given, strict=False)
    except ValidationError as error:
        first = error.errors()[0]
        header = header_name(str(first["loc"][0]))
        raise bad_request(f"header {header}: {first['msg']}", header) from None
    return body.model_copy(update=from_headers.model_dump(exclude_unset=True))


def _text(message: Message, index: int) -> str:
    if isinstance(message.content, str):
        return message.content
    texts = []
    for number, part in enumerate(message.content):
        where = f"messages[{index}].content[{number}]"
        if part.type != "text":
            raise bad_request(
                f"{where} is a {part.type!r} part: sllm reads text parts only", f"{where}.type"
            )
        if part.text is None:
            raise bad_request(f"{where}.text is missing: a text part needs its text", where)
        texts.append(part.text)
    return "\n".join(texts)


def _route_request(body: ChatCompletionRequest, sllm: SllmOptions) -> router_pb2.RouteRequest:
    hint = MODELS.get(body.model)
    if hint is None:
        raise HttpError(
            404,
            f"model {body.model!r} does not exist: use sllm-auto, sllm-edge or sllm-cloud",
            param="model",
            code="model_not_found",
        )
    if body.n not in (None, 1):
        raise bad_request(f"n is {body.n}: sllm returns one choice; send 1 or leave it out", "n")
    messages = [
        common_pb2.ChatMessage(role=_ROLES[message.role], content=_text(message, index))
        for index, message in enumerate(body.messages)
    ]
    request = router_pb2.RouteRequest(
        messages=messages,
        route_hint=ROUTE_HINTS.numbers[hint],
        local_only=bool(sllm.local_only),
        tenant=body.user or "",
        client_request_id=sllm.client_request_id or "",
    )
    max_tokens = (
        body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    )
    if max_tokens is not None:
        request.max_tokens = max_tokens
    if sllm.latency_budget_ms is not None:
        request.latency_budget_ms = sllm.latency_budget_ms
    if sllm.cost_ceiling_usd is not None:
        request.cost_ceiling_usd = sllm.cost_ceiling_usd
    if sllm.answer_format is not None:
        request.answer_format = ANSWER_FORMATS.numbers[sllm.answer_format]
    return request


def query(body: ChatCompletionRequest, sllm: SllmOptions, settings: RouterSettings) -> Query:
    """The validated query, or an HttpError: 404 for an unknown model, 400 with the message
    the gRPC door gives for the same mistake."""
    try:
        request = _route_request(body, sllm)
    except ValueError:
        # protobuf refuses a string it cannot encode (a lone surrogate, "\ud800").
        raise bad_request("a string in the body is not valid Unicode (a lone surrogate?)") from None
    try:
        return to_query(request, settings)
    except InvalidRequest as error:
        raise bad_request(str(error), _PARAMS.get(re.split(r"[\[.]", error.field)[0])) from None


def decision(result: RouteResult) -> dict[str, Any]:
    """What gRPC's RouteResponse says of the decision (router/wire.py), as JSON, but the
    text (the choice's content)."""
    record = json_format.MessageToDict(
        wire.response(result),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    del record["text"]
    record["route"] = result.route
    record["reasoning_mode"] = result.reasoning_mode
    return record


def _header_value(text: str) -> str:
    # HTTP header values are Latin-1 and one line.
    return _UNSENDABLE.sub(" ", text).encode("ascii", "backslashreplace").decode()


def headers(result: RouteResult) -> dict[str, str]:
    return {
        "x-sllm-route": result.route,
        "x-sllm-reason": _header_value(result.decision.reason),
        "x-sllm-policy-version": _header_value(result.decision.policy_version),
        "x-sllm-request-id": result.request_id,
    }


def finish_reason(result: RouteResult, max_tokens: int) -> str:
    """`length` when the answer stopped at a limit, else `stop`."""
    if result.edge is not None and result.route in ("EDGE", "EDGE_FALLBACK"):
        return "length" if result.edge.summary.exit_reason in _EXITS_AT_A_LIMIT else "stop"
    return "length" if result.completion_tokens >= max_tokens else "stop"


def usage(result: RouteResult) -> dict[str, int]:
    """The tokens of the tier that answered (its cost is in the `sllm` field)."""
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def completion(result: RouteResult, *, model: str, max_tokens: int) -> dict[str, Any]:
    return {
        "id": result.request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": finish_reason(result, max_tokens),
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        "sllm": decision(result),
    }
