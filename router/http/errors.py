"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the
status an OpenAI client expects for each cause."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from router import metrics
from router.cascade import RouteFailed
from router.policy import Failure, NoRoute
from router.status import retry_after_s


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


class HttpError(HTTPException):
    """An error answer. An HTTPException, so that FastAPI passes it on as raised even from
    inside its body reading (router/http/limits.py)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.body = ErrorBody(error=ErrorDetail(message=message, type=type, param=param, code=code))

    def response(self) -> JSONResponse:
        return JSONResponse(self.body.model_dump(), self.status_code, headers=self.headers)


def bad_request(message: str, param: str | None = None) -> HttpError:
    return HttpError(400, message, param=param)


# Failure -> status, OpenAI error type, code, and the gRPC status name the router's
# failure metric counts it under (both doors count in one metric).
_FAILURES: dict[Failure, tuple[int, str, str, str]] = {
    "unavailable": (503, "server_error", "no_tier_available", "UNAVAILABLE"),
    "saturated": (429, "rate_limit_error", "rate_limit_exceeded", "RESOURCE_EXHAUSTED"),
    "deadline": (504, "timeout_error", "deadline_exceeded", "DEADLINE_EXCEEDED"),
}


def unanswered(error: NoRoute | RouteFailed) -> HttpError:
    """No tier answered: 503, 429 (with Retry-After) when the tiers were saturated, or 504
    when the time ran out."""
    status, kind, code, grpc_code = _FAILURES[error.failure]
    metrics.FAILURES.labels(grpc_code).inc()
    headers = retry_after(retry_after_s(error)) if status == 429 else {}
    return HttpError(status, str(error), type=kind, code=code, headers=headers)


def retry_after(seconds: float) -> dict[str, str]:
    # Whole seconds: the header has no fractions.
    return {"retry-after": str(math.ceil(seconds))}


# Pydantic names the member of a union it tried as a part of the path: not a field.
_UNION_MEMBERS = {"str", "int", "float", "bool"}


def _field(location: tuple[int | str, ...]) -> str:
    """`("body", "messages", 0, "content", "str")` -> `messages[0].content`."""
    path = ""
    for part in location[1:] if location[:1] == ("body",) else location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in _UNION_MEMBERS and "[" not in part:
            path += f".{part}" if path else part
    return path


def from_validation(error: RequestValidationError) -> HttpError:
    """Pydantic's first complaint, worded as field: what to fix."""
    first = error.errors()[0]
    field = _field(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return bad_request(f"the body is not valid JSON: {first.get('msg')}")
    if not field or field == "body":
        return bad_request(
            "the body must be a JSON object, sent with Content-Type: application/json"
        )
    return bad_request(f"{field}: {first.get('msg')}", field)


def install(app: FastAPI) -> None:
    """Every error the app answers, in OpenAI's shape."""

    async def validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return from_validation(error).response()

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        if isinstance(error, HttpError):
            return error.response()
        # Starlette's own: no such path (404), method not allowed (405).
        kind = "invalid_request_error" if error.status_code < 500 else "server_error"
        headers = dict(error.headers or {})
        failed = HttpError(error.status_code, str(error.detail), type=kind, headers=headers)
        return failed.response()

    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        metrics.FAILURES.labels("INTERNAL").inc()
        return HttpError(500, f"internal error: {error!r}", type="server_error").response()

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
