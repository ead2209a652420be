"""The router's errors as gRPC statuses with details (sllm/status.py): the one place
that says which code, ErrorInfo reason, retry delay and figures each failure gets, in
plain functions a test calls without a server. The HTTP door takes its retry delay from
here too, so both doors tell a client to wait as long."""

from __future__ import annotations

import grpc
from google.rpc import status_pb2

from router.active_policy import NoEarlierPolicy
from router.auth.access import Refused
from router.cascade import RouteFailed
from router.outcomes import OutcomeLogFull
from router.policy import Failure, NoRoute
from sllm.status import (
    DEFAULT_RETRY_AFTER_S,
    ErrorReason,
    error_info,
    exhausted,
    invalid_argument,
    status,
)
from sllm.wire import InvalidRequest

# How a query went unanswered -> its status: a client retries RESOURCE_EXHAUSTED later and
# DEADLINE_EXCEEDED with a larger budget, and neither means the service is down.
_UNANSWERED: dict[Failure, grpc.StatusCode] = {
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "saturated": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "deadline": grpc.StatusCode.DEADLINE_EXCEEDED,
}
_REFUSED = {
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
}
UNDECODABLE = "the request is not a valid message: strings must be valid UTF-8"
SHUTTING_DOWN = "the router is shutting down: send the request to another router"


def retry_after_s(error: NoRoute | RouteFailed) -> float:
    """How long a client should wait before it sends a saturated query again: what the
    rate-limited cloud asked for, when it said."""
    asked = error.retry_after_s if isinstance(error, RouteFailed) else None
    return asked if asked is not None else DEFAULT_RETRY_AFTER_S


def _reason(error: NoRoute | RouteFailed) -> ErrorReason:
    if isinstance(error, RouteFailed):
        return error.reason
    return "BUDGET_TOO_SMALL" if error.failure == "deadline" else "NO_TIER"


def unanswered(error: NoRoute | RouteFailed) -> status_pb2.Status:
    """No tier answered: UNAVAILABLE, DEADLINE_EXCEEDED (with the budget that would do when
    the time was too short) or RESOURCE_EXHAUSTED (with when to retry)."""
    if error.failure == "saturated":
        return exhausted(str(error), _reason(error), retry_after_s(error))
    figures = {}
    shortfall = error.shortfall if isinstance(error, NoRoute) else None
    if shortfall is not None:
        figures = {
            name: str(value)
            for name, value in (
                ("min_budget_ms", shortfall.min_budget_ms),
                ("edge_min_ms", shortfall.edge_min_ms),
                ("cloud_min_ms", shortfall.cloud_min_ms),
                ("remaining_ms", shortfall.remaining_ms),
            )
            if value is not None
        }
    return status(_UNANSWERED[error.failure], str(error), error_info(_reason(error), **figures))


def from_error(
    error: InvalidRequest | NoRoute | RouteFailed | OutcomeLogFull | NoEarlierPolicy | Refused,
) -> status_pb2.Status:
    """The status a servicer ends a call with for an error it cannot serve past."""
    if isinstance(error, InvalidRequest):
        return invalid_argument(error)
    if isinstance(error, NoRoute | RouteFailed):
        return unanswered(error)
    if isinstance(error, OutcomeLogFull):
        return exhausted(str(error), "OUTCOME_LOG_FULL")
    if isinstance(error, Refused):
        return status(_REFUSED[error.status], str(error), error_info(error.reason))
    return status(grpc.StatusCode.FAILED_PRECONDITION, str(error))


def undecodable() -> status_pb2.Status:
    """Bytes that are no request: no one field is at fault, so the violation names none."""
    return invalid_argument(InvalidRequest(UNDECODABLE, field=""))


def not_found(request_id: str) -> status_pb2.Status:
    return status(grpc.StatusCode.NOT_FOUND, f"no logged request has request_id {request_id!r}")


def shutting_down() -> status_pb2.Status:
    return status(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN, error_info("SHUTTING_DOWN"))
