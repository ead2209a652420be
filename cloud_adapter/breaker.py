"""A circuit breaker for one endpoint.

N consecutive failures open it; while open, calls fail at once with no I/O. After the
cool-down one call goes through as a half-open probe (others still fail at once): its
success closes the breaker, its failure opens it again for another cool-down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import structlog

from cloud_adapter import metrics

BreakerState = Literal["closed", "open", "half_open"]
_GAUGE_VALUE: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}

log = structlog.get_logger("cloud_adapter.breaker")


class BreakerOpen(Exception):
    """The call was refused without I/O."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(f"circuit breaker open, next probe in {retry_in_s:.2f} s")
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    def __init__(
        self,
        endpoint: str,
        *,
        failure_threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self._failure_threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        metrics.BREAKER_STATE.labels(endpoint).set(0)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probe_in_flight or self._clock() - self._opened_at >= self._cooldown_s:
            return "half_open"
        return "open"

    def check(self) -> None:
        """Raises BreakerOpen if a call could not go out now; claims nothing."""
        if self._opened_at is None:
            return
        waited = self._clock() - self._opened_at
        if self._probe_in_flight or waited < self._cooldown_s:
            raise BreakerOpen(max(self._cooldown_s - waited, 0.0))

    def before_call(self) -> None:
        """Raises BreakerOpen unless a call may go out now: closed, or as the half-open probe."""
        self.check()
        if self._opened_at is not None:
            self._probe_in_flight = True
            self._publish()

    def record_success(self) -> None:
        was_open = self._opened_at is not None
        self._consecutive_failures = 0
        self._opened_at = None
        self._probe_in_flight = False
        if was_open:
            self._publish()

    def record_failure(self) -> None:
        self._consecutive_failures += 1
        if self._probe_in_flight or (
            self._opened_at is None and self._consecutive_failures >= self._failure_threshold
        ):
            self._opened_at = self._clock()
            self._probe_in_flight = False
            metrics.BREAKER_OPENED.labels(self.endpoint).inc()
            self._publish()

    def record_abandoned(self) -> None:
        """The call ended with no verdict on the endpoint (cancelled): free the probe slot."""
        if self._probe_in_flight:
            self._probe_in_flight = False
            self._publish()

    def _publish(self) -> None:
        state = self.state
        metrics.BREAKER_STATE.labels(self.endpoint).set(_GAUGE_VALUE[state])
        log.info(
            "cloud.breaker",
            endpoint=self.endpoint,
            state=state,
            consecutive_failures=self._consecutive_failures,
        )
