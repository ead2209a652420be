"""A failed call as one exception, `RouterError`: the gRPC code's name, the message for a
person, and what a program acts on, read from google.rpc's error details when the router
sent them (which field to fix, when to retry, why: the README's gRPC "Errors")."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class FieldViolation(NamedTuple):
    # The field's path in the request, as `messages[2].content`.
    field: str
    description: str


@dataclass(frozen=True, slots=True)
class ErrorDetails:
    """The details of a failed call; each empty or None when the router sent none."""

    # google.rpc.BadRequest: what to fix in the request.
    field_violations: tuple[FieldViolation, ...] = ()
    # google.rpc.RetryInfo: the same request may succeed after this many seconds.
    retry_after_s: float | None = None
    # google.rpc.ErrorInfo: why, as a constant a program can switch on ("EDGE_QUEUE_FULL"),
    # the service that says so, and facts about it.
    reason: str | None = None
    domain: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class RouterError(Exception):
    """A call the router (or the connection to it) did not complete. `code`: the gRPC
    status's name ("INVALID_ARGUMENT", "UNAVAILABLE", "DEADLINE_EXCEEDED", ...)."""

    def __init__(self, code: str, message: str, details: ErrorDetails | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or ErrorDetails()


def _details(error: grpc.RpcError) -> ErrorDetails:
    try:
        # from_call reads code(), details() and trailing_metadata(), which the errors of
        # both the sync and the asyncio stubs have; grpc-stubs types it for a Call only.
        status = rpc_status.from_call(cast(grpc.Call, error))
    except ValueError:
        # Details whose code or message differ from the call's: not this error's.
        return ErrorDetails()
    if status is None:
        return ErrorDetails()
    violations: list[FieldViolation] = []
    retry_after_s = None
    info = None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += (FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after_s = retry.retry_delay.ToTimedelta().total_seconds()
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
    return ErrorDetails(
        field_violations=tuple(violations),
        retry_after_s=retry_after_s,
        reason=info.reason if info is not None else None,
        domain=info.domain if info is not None else None,
        metadata=dict(info.metadata) if info is not None else {},
    )


def router_error(error: grpc.RpcError) -> RouterError:
    return RouterError(error.code().name, error.details() or "", _details(error))


@contextmanager
def raising_router_errors() -> Iterator[None]:
    """A gRPC error raised inside becomes a `RouterError`."""
    try:
        yield
    except grpc.RpcError as error:
        raise router_error(error) from error
