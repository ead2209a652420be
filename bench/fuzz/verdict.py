"""What a server may answer hostile input: OK or a documented client-error status whose
message names the field (gRPC INVALID_ARGUMENT, HTTP 400), or a documented status of a
request it could not serve; never INTERNAL or UNKNOWN, never a 500, never an empty reason."""

from __future__ import annotations

import json

from google.protobuf.descriptor import Descriptor

from sllm.v1 import edge_pb2, router_pb2

# Documented in README.md (gRPC) and docs/http.md (HTTP). DEADLINE_EXCEEDED is also what
# the client's own deadline gives a request that did not end: counted apart, as a hang.
GRPC_STATUSES = {
    "OK",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "FAILED_PRECONDITION",
    "UNAVAILABLE",
    "RESOURCE_EXHAUSTED",
    "DEADLINE_EXCEEDED",
}
HTTP_STATUSES = {200, 400, 404, 413, 429, 503, 504}
# How the doors say that bytes were no message at all (no field to name).
_UNDECODABLE = ("not a valid", "UTF-8", "JSON", "Content-Type", "body")


def _field_names(descriptor: Descriptor) -> set[str]:
    names = set()
    for field in descriptor.fields:
        names.add(field.name)
        if field.message_type is not None:
            names |= _field_names(field.message_type)
    return names


FIELDS = (
    _field_names(router_pb2.RouteRequest.DESCRIPTOR)
    | _field_names(router_pb2.FeedbackRequest.DESCRIPTOR)
    | _field_names(edge_pb2.EdgeGenerateRequest.DESCRIPTOR)
)
_HTTP_FIELDS = {
    "model",
    "messages",
    "role",
    "content",
    "max_tokens",
    "max_completion_tokens",
    "stream",
    "temperature",
    "user",
    "response_format",
    "sllm",
    "latency_budget_ms",
    "cost_ceiling_usd",
    "local_only",
    "answer_format",
    "route",
    "n",
    "stop",
    "tools",
}


def _names_a_field(message: str, fields: set[str]) -> bool:
    return any(field in message for field in fields) or any(u in message for u in _UNDECODABLE)


def grpc_violation(status: str, details: str) -> str | None:
    """Why this answer breaks the rule, or None."""
    if status not in GRPC_STATUSES:
        return f"status {status}: {details!r}"
    if status != "OK" and not details.strip():
        return f"status {status} without a message"
    if status == "INVALID_ARGUMENT" and not _names_a_field(details, FIELDS):
        return f"INVALID_ARGUMENT names no field: {details!r}"
    return None


def http_violation(status: int, body: bytes) -> str | None:
    if status not in HTTP_STATUSES:
        return f"status {status}: {body[:300]!r}"
    if status == 200:
        return None
    try:
        error = json.loads(body)["error"]
        message = str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"status {status} without an error in OpenAI's shape: {body[:300]!r}"
    if status == 400 and not (error.get("param") or _names_a_field(message, _HTTP_FIELDS)):
        return f"400 names no field: {message!r}"
    return None
