"""How long the replay endpoint takes, like a cloud model: a time to the first token, then
a time per token; and how many tokens a text counts for (~4 characters a token)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass
class Latency:
    ttft_ms: float = 0.0
    ms_per_token: float = 0.0
    # Up to this much more time to the first token, uniformly drawn per request.
    jitter_ms: float = 0.0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if min(self.ttft_ms, self.ms_per_token, self.jitter_ms) < 0:
            raise ValueError("latencies must be >= 0 ms")
        self._rng = random.Random(self.seed)

    def first_token_s(self) -> float:
        return (self.ttft_ms + self._rng.uniform(0, self.jitter_ms)) / 1000

    def text_s(self, text: str) -> float:
        """The time to generate `text` after the first token, at ms_per_token."""
        return self.ms_per_token * len(text) / CHARS_PER_TOKEN / 1000

    def whole_answer_s(self, text: str, first_piece: str) -> float:
        """A unary answer comes when its last token would have been streamed."""
        return self.first_token_s() + self.text_s(text[len(first_piece) :])
