"""Which failures are worth another attempt, and how long to wait, within the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx2
import openai
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from cloud_adapter.causes import connection_failure
from sllm.settings import CloudSettings

log = structlog.get_logger("cloud_adapter.retrying")


def is_transient(exc: BaseException) -> bool:
    """Failures that say nothing about the request itself: the endpoint may answer next time.

    They are retried, and they count against the endpoint's breaker."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    # APIConnectionError covers timeouts; transport errors come raw from inside a stream.
    return isinstance(
        exc, openai.APIConnectionError | httpx2.TransportError | ConnectionError | TimeoutError
    )


def retry_after_s(exc: BaseException | None) -> float | None:
    """Seconds the endpoint asked to wait (Retry-After or retry-after-ms), if it did."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    headers = exc.response.headers
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


class _WaitRetryAfterElseBackoff:
    def __init__(self, settings: CloudSettings, refused: Callable[[], bool]) -> None:
        self._backoff = wait_random_exponential(
            multiplier=settings.backoff_initial_s, max=settings.backoff_max_s
        )
        self._refused = refused

    def __call__(self, state: RetryCallState) -> float:
        assert state.outcome is not None
        # The breaker just opened: the next attempt is refused at once, whatever the
        # wait; waiting out a Retry-After first would be latency for nothing.
        if self._refused():
            return 0.0
        asked = retry_after_s(state.outcome.exception())
        return asked if asked is not None else self._backoff(state)


class _StopWhenNextAttemptCannotFit(stop_base):
    """Stops when the coming wait plus the shortest call would overrun the deadline."""

    def __init__(self, deadline: float, min_call_s: float) -> None:
        self._deadline = deadline
        self._min_call_s = min_call_s

    def __call__(self, state: RetryCallState) -> bool:
        return time.monotonic() + state.upcoming_sleep + self._min_call_s > self._deadline


def _log_retry(endpoint: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None
        exc = state.outcome.exception()
        log.info(
            "cloud.retry",
            endpoint=endpoint,
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 3),
            # A refused connection's own type, not the timeout some transports call it.
            cause=type((exc and connection_failure(exc)) or exc).__name__,
            status=getattr(exc, "status_code", None),
        )

    return before_sleep


def retrying(
    settings: CloudSettings,
    *,
    deadline: float,
    endpoint: str,
    refused: Callable[[], bool],
) -> AsyncRetrying:
    """The retry policy of one call: transient failures only, backoff with jitter or the
    endpoint's Retry-After, never past `max_attempts` nor the deadline; no wait when
    `refused()` (the endpoint's breaker is open: the next attempt fails at once). Reraises
    the last failure as it is."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=_WaitRetryAfterElseBackoff(settings, refused),
        stop=stop_after_attempt(settings.max_attempts)
        | _StopWhenNextAttemptCannotFit(deadline, settings.min_call_s),
        before_sleep=_log_retry(endpoint),
        reraise=True,
    )
