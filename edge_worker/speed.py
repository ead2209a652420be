"""Prefill and decode speed, measured once at start-up for `Info`."""

from __future__ import annotations

import time
from dataclasses import dataclass

from edge_worker.model import EdgeModel

_PROBE_TEXT = (
    "The quick brown fox jumps over the lazy dog while the farmer counts his sheep "
    "and the children read their books by the window on a quiet afternoon."
)


@dataclass(frozen=True, slots=True)
class Speed:
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


def measure_speed(model: EdgeModel, *, decode_tokens: int = 32) -> Speed:
    """Greedy decode of a fixed count of tokens after a short prompt (no early exit)."""
    prompt = model.tokenize(_PROBE_TEXT * 2)
    with model.lock:
        model.prefill(prompt)  # warm-up: the first call pays one-off allocations
        model.forget()
        started = time.perf_counter()
        model.prefill(prompt)
        prefill_s = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(decode_tokens):
            model.feed(int(model.last_logits().argmax()))
        decode_s = time.perf_counter() - started
    return Speed(len(prompt) / prefill_s, decode_tokens / decode_s)
