"""What a cloud call returns: plain frozen values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CloudResult:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    # Streams only: from the call's start to the first token of text.
    ttft_ms: float | None
    attempts: int
    finish_reason: str = ""
    # True when the endpoint sent no usage (some servers omit it in streams): the token
    # counts are then estimated (one per streamed delta; ~4 prompt characters a token).
    usage_estimated: bool = False


@dataclass(frozen=True, slots=True)
class CloudChunk:
    """A streamed delta; the last chunk of a stream carries the whole `result`."""

    text: str
    result: CloudResult | None = None
