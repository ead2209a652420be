"""Latency estimators per tier, updated online from every call.

Each rate is an exponentially weighted moving average, so the estimate follows a machine
that slows down under load (or a cloud that speeds up) within a few calls, while one
outlier moves it only a little.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from sllm.chat import ChatMessage

_ALPHA = 0.2


@dataclass
class _Ewma:
    value: float

    def update(self, sample: float) -> None:
        self.value += _ALPHA * (sample - self.value)


@dataclass(frozen=True, slots=True)
class EdgeEstimate:
    """The edge's expected time for one prompt: a fixed part, then a cost per token."""

    overhead_ms: float  # queue wait + prefill
    ms_per_token: float

    def ms(self, completion_tokens: int) -> float:
        return self.overhead_ms + completion_tokens * self.ms_per_token

    def tokens_within(self, time_ms: float) -> int:
        return max(0, int((time_ms - self.overhead_ms) / self.ms_per_token))


class EdgeLatency:
    """Edge time = queue wait + prefill (ms per prompt token) + decode (ms per token).

    The router only estimates a prompt's tokens from its text; the edge prefills more (the
    chat template, the answer format's instruction): that difference is learned too, so
    the prefill is planned for the prompt the edge actually reads."""

    def __init__(self, *, prefill_tokens_per_s: float, decode_tokens_per_s: float) -> None:
        self._lock = threading.Lock()
        self._queue_ms = _Ewma(0.0)
        self._prefill_ms_per_token = _Ewma(1000.0 / max(prefill_tokens_per_s, 1e-3))
        self._decode_ms_per_token = _Ewma(1000.0 / max(decode_tokens_per_s, 1e-3))
        self._unseen_prompt_tokens = _Ewma(0.0)

    def estimate(self, prompt_tokens: int) -> EdgeEstimate:
        """`prompt_tokens`: `estimate_tokens` of the messages."""
        with self._lock:
            prefilled = prompt_tokens + self._unseen_prompt_tokens.value
            return EdgeEstimate(
                overhead_ms=self._queue_ms.value + prefilled * self._prefill_ms_per_token.value,
                ms_per_token=self._decode_ms_per_token.value,
            )

    def observe(
        self,
        *,
        queue_ms: float,
        prefill_ms: float,
        decode_ms: float,
        prompt_tokens: int,
        completion_tokens: int,
        estimated_prompt_tokens: int | None = None,
    ) -> None:
        """`prompt_tokens`: those the edge prefilled; `estimated_prompt_tokens`: what
        `estimate` was given for the same prompt."""
        with self._lock:
            self._queue_ms.update(queue_ms)
            if estimated_prompt_tokens is not None and prompt_tokens > 0:
                self._unseen_prompt_tokens.update(max(0, prompt_tokens - estimated_prompt_tokens))
            if prompt_tokens > 0:
                self._prefill_ms_per_token.update(prefill_ms / prompt_tokens)
            if completion_tokens > 1:
                self._decode_ms_per_token.update(decode_ms / completion_tokens)


@dataclass
class _Line:
    """A straight line fitted by least squares to recent (x, y) points, each older point
    weighing `_LINE_DECAY` times the next: sums of weights and moments, so an update is
    O(1) and the fit follows a cloud that changes."""

    weight: float = 0.0
    x: float = 0.0
    y: float = 0.0
    xx: float = 0.0
    xy: float = 0.0

    def add(self, x: float, y: float) -> None:
        self.weight = _LINE_DECAY * self.weight + 1.0
        self.x = _LINE_DECAY * self.x + x
        self.y = _LINE_DECAY * self.y + y
        self.xx = _LINE_DECAY * self.xx + x * x
        self.xy = _LINE_DECAY * self.xy + x * y

    def slope(self, *, min_points: float, min_spread: float) -> float | None:
        """None while the points are too few, or too alike in x, to tell a slope."""
        if self.weight < min_points:
            return None
        mean_x = self.x / self.weight
        variance = self.xx / self.weight - mean_x * mean_x
        if variance < min_spread * min_spread:
            return None
        return (self.xy / self.weight - mean_x * self.y / self.weight) / variance


# About the last 20 calls count in the line fitted to non-streamed calls.
_LINE_DECAY = 0.95
# The fit speaks once it holds this many calls' weight whose lengths differ by at least
# this many tokens (standard deviation): below that, noise in their latencies would make
# the slope up.
_LINE_MIN_CALLS = 5.0
_LINE_MIN_SPREAD_TOKENS = 4.0


class CloudLatency:
    """Cloud time = time to first token + ms per further token.

    A streamed call shows both. A non-streamed one shows only its whole latency: the ms
    per token is then the slope of latency against further tokens over recent
    non-streamed calls (once their lengths differ enough to show one), and the time to
    first token that latency less its further tokens at the current ms per token. So a
    deployment whose requests are all unary learns both too."""

    def __init__(self, *, ttft_ms: float, ms_per_token: float) -> None:
        self._lock = threading.Lock()
        self._ttft_ms = _Ewma(ttft_ms)
        self._ms_per_token = _Ewma(ms_per_token)
        self._non_streamed = _Line()

    def estimate_ms(self, completion_tokens: int) -> float:
        with self._lock:
            return self._ttft_ms.value + completion_tokens * self._ms_per_token.value

    def observe(self, *, latency_ms: float, ttft_ms: float | None, completion_tokens: int) -> None:
        """`ttft_ms`: None for a non-streamed call."""
        further = max(completion_tokens - 1, 0)
        with self._lock:
            if ttft_ms is None:
                self._non_streamed.add(further, latency_ms)
                slope = self._non_streamed.slope(
                    min_points=_LINE_MIN_CALLS, min_spread=_LINE_MIN_SPREAD_TOKENS
                )
                # A slope at or below zero is noise (more tokens never take less time).
                if slope is not None and slope > 0:
                    self._ms_per_token.update(slope)
                self._ttft_ms.update(max(latency_ms - further * self._ms_per_token.value, 0.0))
                return
            self._ttft_ms.update(ttft_ms)
            if further > 0:
                self._ms_per_token.update((latency_ms - ttft_ms) / further)


class RouterOverhead:
    """The router's own time in a request, beyond the tiers' work: deciding, dispatching to
    a tier and back, scoring an edge answer, committing the outcome row. `reserve_ms` is
    what a plan keeps for it: the mean plus four mean deviations (as TCP's retransmission
    timer does), so that a budget holds for nearly every request, not half of them."""

    def __init__(self, *, initial_ms: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._mean = _Ewma(initial_ms)
        self._deviation = _Ewma(initial_ms / 2.0)

    def reserve_ms(self) -> float:
        with self._lock:
            return self._mean.value + 4.0 * self._deviation.value

    def observe(self, ms: float) -> None:
        with self._lock:
            self._deviation.update(abs(ms - self._mean.value))
            self._mean.update(ms)


def estimate_tokens(text: str) -> int:
    """A fast prompt-length estimate (about 4 characters per token for English BPE)."""
    return len(text) // 4 + 1


def estimate_prompt_tokens(messages: Iterable[ChatMessage]) -> int:
    return estimate_tokens("".join(m.content for m in messages))
