"""From whatever a call raised to the few typed errors callers handle."""

from __future__ import annotations

import httpx2
import openai

from cloud_adapter.causes import connection_failure
from cloud_adapter.errors import (
    CloudAuthError,
    CloudBadRequest,
    CloudDeadlineExceeded,
    CloudError,
    CloudModelNotFound,
    CloudRateLimited,
    CloudStreamBroken,
    CloudUnavailable,
)
from cloud_adapter.retrying import retry_after_s


def typed_error(
    exc: Exception, *, endpoint: str, model: str, attempts: int, deadline_reached: bool
) -> CloudError:
    """The typed error for the last failure of a call; `deadline_reached`: no time was
    left for another attempt."""
    tried = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
    failed = connection_failure(exc)
    if failed is not None:
        return CloudUnavailable(
            f"connection failed {tried}: {failed}", endpoint=endpoint, cause=exc
        )
    if isinstance(exc, TimeoutError | openai.APITimeoutError | httpx2.TimeoutException):
        if deadline_reached:
            return CloudDeadlineExceeded(f"deadline reached {tried}", endpoint=endpoint, cause=exc)
        return CloudUnavailable(f"timed out {tried}", endpoint=endpoint, cause=exc)
    if isinstance(exc, openai.APIStatusError):
        status, said = exc.status_code, _server_message(exc)
        if status == 429:
            return CloudRateLimited(
                f"rate limited {tried}: {said}",
                endpoint=endpoint,
                cause=exc,
                retry_after_s=retry_after_s(exc),
            )
        if status in (401, 403):
            return CloudAuthError(f"HTTP {status}: {said}", endpoint=endpoint, cause=exc)
        if status >= 500:
            return CloudUnavailable(f"HTTP {status} {tried}: {said}", endpoint=endpoint, cause=exc)
        if status == 404 and "model" in said.lower():
            return CloudModelNotFound(
                f"model {model!r} not found: {said}", endpoint=endpoint, cause=exc
            )
        return CloudBadRequest(f"HTTP {status}: {said}", endpoint=endpoint, cause=exc)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError | ConnectionError):
        reason = exc.__cause__ or exc
        return CloudUnavailable(
            f"connection failed {tried}: {reason}", endpoint=endpoint, cause=exc
        )
    return CloudUnavailable(
        f"unexpected answer {tried}: {type(exc).__name__}: {exc}", endpoint=endpoint, cause=exc
    )


def outcome_label(error: CloudError) -> str:
    if isinstance(error, CloudUnavailable) and error.breaker_open:
        return "breaker_open"
    labels: dict[type[CloudError], str] = {
        CloudUnavailable: "unavailable",
        CloudRateLimited: "rate_limited",
        CloudDeadlineExceeded: "deadline",
        CloudModelNotFound: "model_not_found",
        CloudBadRequest: "bad_request",
        CloudAuthError: "auth",
        CloudStreamBroken: "stream_broken",
    }
    return labels.get(type(error), "error")


def _server_message(exc: openai.APIStatusError) -> str:
    return exc.message[:300]
