"""gRPC statuses with machine-readable details (google.rpc's error model), for every
servicer: a client reads the code, the message for a person, and in the details what a
program acts on: which field to fix (`BadRequest`), when to retry (`RetryInfo`), and why
(`ErrorInfo`, one of `ErrorReason`). Each servicer maps its own errors onto these
builders in one place (router/status.py, edge_worker/service.py); README's gRPC
"Errors" lists the codes, detail types and reasons."""

from __future__ import annotations

import math
from typing import Any, Literal, NoReturn, Protocol, TypeAlias, cast

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from sllm.wire import InvalidRequest

# ErrorInfo.domain: the service that raised the error, in Google's form (a DNS name).
DOMAIN = "sllm.dev"
# A client told to retry without a figure from the cloud waits this long (gRPC's
# RetryInfo and HTTP's Retry-After alike).
DEFAULT_RETRY_AFTER_S = 1.0
# ErrorInfo.reason: a closed set, so that clients can switch on it (README's gRPC
# "Errors" says what each means). Renaming one breaks clients: add, never rename.
ErrorReason = Literal[
    # UNAVAILABLE
    "NO_TIER",
    "EDGE_FAILED",
    "CLOUD_FAILED",
    "SHUTTING_DOWN",
    # DEADLINE_EXCEEDED
    "BUDGET_TOO_SMALL",
    "EDGE_TIMED_OUT",
    "CLOUD_TIMED_OUT",
    # RESOURCE_EXHAUSTED
    "EDGE_QUEUE_FULL",
    "CLOUD_RATE_LIMITED",
    "OUTCOME_LOG_FULL",
    # UNAUTHENTICATED, PERMISSION_DENIED
    "TOKEN_MISSING",
    "TOKEN_INVALID",
    "ROLE_MISSING",
    "TENANT_MISMATCH",
]
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class _AbortsWithStatus(Protocol):
    # grpc.aio's servicer context has it; grpc-stubs leaves it out.
    async def abort_with_status(self, status: grpc.Status) -> NoReturn: ...


def status(code: grpc.StatusCode, message: str, *details: Message) -> status_pb2.Status:
    """A google.rpc.Status; the message stays the one a person reads in `details()`."""
    proto = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        proto.details.add().Pack(detail)
    return proto


def code_of(proto: status_pb2.Status) -> grpc.StatusCode:
    return _CODES[proto.code]


def error_info(reason: ErrorReason, **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)


def retry_info(delay_s: float) -> error_details_pb2.RetryInfo:
    nanos, seconds = math.modf(max(delay_s, 0.0))
    return error_details_pb2.RetryInfo(
        retry_delay=Duration(seconds=int(seconds), nanos=round(nanos * 1e9))
    )


def invalid_argument(error: InvalidRequest) -> status_pb2.Status:
    """INVALID_ARGUMENT whose BadRequest names the field, with the message as its
    description."""
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=error.field, description=str(error)
    )
    return status(
        grpc.StatusCode.INVALID_ARGUMENT,
        str(error),
        error_details_pb2.BadRequest(field_violations=[violation]),
    )


def exhausted(
    message: str, reason: ErrorReason, delay_s: float = DEFAULT_RETRY_AFTER_S
) -> status_pb2.Status:
    """RESOURCE_EXHAUSTED: retry after `delay_s`, the same query may pass then."""
    return status(
        grpc.StatusCode.RESOURCE_EXHAUSTED, message, retry_info(delay_s), error_info(reason)
    )


async def abort(context: Context, proto: status_pb2.Status) -> NoReturn:
    """Ends the call with `proto`: its code and message, and its details in the trailing
    metadata (grpc-status-details-bin), where `rpc_status.from_call` finds them."""
    await cast(_AbortsWithStatus, context).abort_with_status(rpc_status.to_status(proto))
