"""A scripted model behind the edge worker's model protocols (edge_worker/protocols.py).

`ScriptedModel(script)` "generates" the script's pieces in order, each with the
log-probability the script gives it, then its end token. Its logits row is built so that
the worker's own scorer (`TokenScorer`) picks exactly the scripted token and computes
exactly the scripted log-probability: the chosen token's logit is 0, every other token's
is -d, with d solved from the log-probability. The entropy follows from that two-level
row (`expected_entropy`). Time passes only on a `FakeClock`: reading the prompt and each
decode step advance it by the amounts given, so deadlines are exact and nothing sleeps.

Why a fake: real llama.cpp builds do not write the same continuation, so the exact
token counts and exit details of the early-exit rules are tested here, on a script.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_worker.protocols import ServedModel
from sllm.chat import ChatMessage
from tests.fakes.clock import FakeClock

END_TOKEN = 0
# Prompt tokens read between two interruption checks, as edge_worker.model reads them.
PREFILL_CHUNK = 64
# The logit gap that stands for a log-probability of 0 (float32: the rest is ~1e-23).
_CERTAIN_GAP = 60.0


@dataclass(frozen=True, slots=True)
class Step:
    """One generated token: its text (or raw bytes: a piece of a UTF-8 character) and the
    log-probability the model gives it."""

    text: str | bytes
    logprob: float = -0.05

    @property
    def data(self) -> bytes:
        return self.text.encode() if isinstance(self.text, str) else self.text


def steps(*pieces: str, logprob: float = -0.05) -> list[Step]:
    """Pieces that all get the same log-probability."""
    return [Step(piece, logprob) for piece in pieces]


def expected_entropy(logprob: float, n_vocab: int) -> float:
    """The entropy of the row `ScriptedModel` builds for `logprob` (nats)."""
    chosen = math.exp(logprob)
    if chosen >= 1.0:
        return 0.0
    other = (1.0 - chosen) / (n_vocab - 1)
    return -chosen * logprob - (1.0 - chosen) * math.log(other)


@dataclass
class ScriptedModel:
    """A `ServedModel` that writes `script`, then ends (its end token has `end_logprob`).

    `prompt_tokens`: the length of every rendered prompt; `prefill_seconds` and
    `decode_seconds`: how far `clock` moves per prompt chunk read and per token fed."""

    script: Sequence[Step]
    n_ctx: int = 2048
    n_vocab: int = 4096
    prompt_tokens: int = 10
    end_logprob: float = -0.01
    clock: FakeClock = field(default_factory=FakeClock)
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    # Feeding the token at this index waits until `resume` is set (a decode in progress).
    pause_at: int | None = None
    resume: threading.Event = field(default_factory=threading.Event)
    name: str = "scripted"
    path: Path = Path("scripted.gguf")
    lock: threading.Lock = field(default_factory=threading.Lock)
    # What the worker asked of it, for tests to read.
    rendered: list[tuple[tuple[ChatMessage, ...], str]] = field(default_factory=list)
    fed: list[int] = field(default_factory=list)
    prefills: int = 0
    closed: bool = False

    def __post_init__(self) -> None:
        self._ids: dict[bytes, int] = {}
        self._pieces: list[bytes] = [b""]  # END_TOKEN's text
        for step in self.script:
            if step.data not in self._ids:
                self._ids[step.data] = len(self._pieces)
                self._pieces.append(step.data)
        if len(self._pieces) >= self.n_vocab:
            raise ValueError(f"the script has more distinct pieces than n_vocab={self.n_vocab}")
        lowest = -math.log(self.n_vocab)
        for logprob in [s.logprob for s in self.script] + [self.end_logprob]:
            if not lowest < logprob <= 0.0:
                raise ValueError(
                    f"logprob {logprob} cannot be the arg-max's in {self.n_vocab} tokens: "
                    f"keep it in ({lowest:.2f}, 0]"
                )
        self._row = np.empty(self.n_vocab, dtype=np.float32)
        self._position = 0  # script steps fed since the prompt

    def render_prompt(self, messages: Sequence[ChatMessage], primer: str = "") -> list[int]:
        self.rendered.append((tuple(messages), primer))
        return [1 + (i % (self.n_vocab - 1)) for i in range(self.prompt_tokens)]

    def prefill(
        self, tokens: Sequence[int], interrupted: Callable[[], bool] = lambda: False
    ) -> bool:
        """Reads the prompt as the real model does, in chunks of `PREFILL_CHUNK` tokens
        with an interruption check before each; the clock moves `prefill_seconds` a chunk."""
        self.prefills += 1
        self._position = 0
        for _ in range(0, len(tokens), PREFILL_CHUNK):
            if interrupted():
                return False
            self.clock.advance(self.prefill_seconds)
        return True

    def _next(self) -> tuple[int, float]:
        if self._position < len(self.script):
            step = self.script[self._position]
            return self._ids[step.data], step.logprob
        return END_TOKEN, self.end_logprob

    def last_logits(self) -> npt.NDArray[np.float32]:
        token, logprob = self._next()
        # p(chosen) = 1 / (1 + (n - 1) e^-d) = e^logprob  =>  d = log((n - 1) / (e^-lp - 1)).
        rest = math.expm1(-logprob)
        gap = _CERTAIN_GAP if rest <= 0.0 else math.log((self.n_vocab - 1) / rest)
        self._row.fill(-gap)
        self._row[token] = 0.0
        return self._row

    def feed(self, token: int) -> None:
        expected, _ = self._next()
        assert token == expected, f"fed token {token}, but the model's arg-max was {expected}"
        if self.pause_at is not None and len(self.fed) == self.pause_at:
            assert self.resume.wait(timeout=30), "the test never resumed the model"
        self.fed.append(token)
        self._position += 1
        self.clock.advance(self.decode_seconds)

    def is_end(self, token: int) -> bool:
        return token == END_TOKEN

    def token_bytes(self, token: int) -> bytes:
        # Tokens the script never writes spell nothing.
        return self._pieces[token] if token < len(self._pieces) else b""

    def close(self) -> None:
        self.closed = True


def _is_a_served_model(model: ScriptedModel) -> ServedModel:
    """Never called: mypy checks here that the fake has the worker's model interface."""
    return model
