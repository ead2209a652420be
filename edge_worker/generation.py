"""One generation, start to finish: prefill, greedy decode with confidence, early exit.

Plain blocking code: the engine runs it in its model thread. It checks the cancel flag
and the deadline before every token, so a cancelled or expired call stops within one.
The model is anything that is a `TokenModel` (edge_worker/protocols.py), and the clock
the deadline is read on can be given: tests run the loop exactly on a scripted model.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_worker.confidence import ConfidenceSummary, TokenScorer
from edge_worker.early_exit import ExitJudge, ExitReason, ExitRules
from edge_worker.options import OptionTokens
from edge_worker.prompts import ReasoningMode
from edge_worker.protocols import TokenModel
from sllm.answers import AnswerFormat


@dataclass(frozen=True, slots=True)
class PreparedGeneration:
    """A validated request with its prompt already rendered to tokens."""

    prompt_tokens: list[int]
    primer: str
    reasoning_mode: ReasoningMode
    answer_format: AnswerFormat
    max_tokens: int
    deadline: float | None  # time.monotonic() value
    rules: ExitRules
    request_id: str


@dataclass(frozen=True, slots=True)
class Delta:
    text: str
    logprob: float
    entropy: float
    index: int


@dataclass(frozen=True, slots=True)
class GenerationResult:
    # The generated text (the deltas joined); the primer is not part of it.
    text: str
    final_answer: str | None
    prompt_tokens: int
    completion_tokens: int
    prefill_ms: float
    decode_ms: float
    confidence: ConfidenceSummary
    exit_reason: ExitReason
    exit_detail: str


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def _detail(reason: ExitReason, job: PreparedGeneration, limit: int) -> str:
    """Words for the exits the loop decides (the judge explains its own)."""
    if reason is ExitReason.LENGTH and limit == job.max_tokens:
        return f"max_tokens ({limit}) generated"
    if reason is ExitReason.LENGTH:
        return f"the context is full after {limit} tokens"
    if reason is ExitReason.BUDGET:
        return "the time budget (or the caller's deadline) ran out"
    if reason is ExitReason.STOP:
        return "the model ended its reply"
    return "the caller cancelled"


def _interruption(
    job: PreparedGeneration, cancelled: threading.Event, clock: Callable[[], float]
) -> ExitReason | None:
    if cancelled.is_set():
        return ExitReason.CANCELLED
    if job.deadline is not None and clock() >= job.deadline:
        return ExitReason.BUDGET
    return None


def generate(
    model: TokenModel,
    job: PreparedGeneration,
    emit: Callable[[Delta], None],
    cancelled: threading.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
    options: OptionTokens | None = None,
) -> GenerationResult:
    """Runs `job` on `model` under its lock; `clock` reads the time `job.deadline` is on;
    `options`: the tokens of the answer format's options, to report the answer's share."""
    with model.lock:
        started = time.perf_counter()
        scorer = TokenScorer(model.n_vocab, None if options is None else options.ids)
        judge = ExitJudge(job.primer, job.answer_format, job.rules, options)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        limit = min(job.max_tokens, model.n_ctx - len(job.prompt_tokens))
        # A job that waited past its deadline (or whose caller left) never touches the model.
        exit_reason = _interruption(job, cancelled, clock)
        if exit_reason is None and not model.prefill(
            job.prompt_tokens, lambda: _interruption(job, cancelled, clock) is not None
        ):
            exit_reason = _interruption(job, cancelled, clock)
        prefill_ms = _ms(started)
        decode_started = time.perf_counter()
        # The last token, not yet fed to the model, and its delta, not yet emitted.
        pending: tuple[int, Delta] | None = None
        while exit_reason is None:
            exit_reason = _interruption(job, cancelled, clock)
            if exit_reason is not None:
                break
            if judge.completion_tokens >= limit:
                exit_reason = ExitReason.LENGTH
                break
            if pending is not None:
                # Emitted right before the decode releases the GIL: the event loop it wakes
                # handles the delta while the model computes, not while this thread waits.
                emit(pending[1])
                model.feed(pending[0])
                pending = None
            choice = scorer.choose(model.last_logits())
            if model.is_end(choice.token):
                exit_reason = ExitReason.STOP
                break
            piece = decoder.decode(model.token_bytes(choice.token))
            delta = Delta(piece, choice.logprob, choice.entropy, judge.completion_tokens)
            pending = (choice.token, delta)
            exit_reason = judge.add(piece, choice)
        if pending is not None:
            emit(pending[1])
        judged = judge.finish(decoder.decode(b"", final=True))
        return GenerationResult(
            text=judged.text,
            final_answer=judged.final_answer,
            prompt_tokens=len(job.prompt_tokens),
            completion_tokens=judged.completion_tokens,
            prefill_ms=prefill_ms,
            decode_ms=_ms(decode_started),
            confidence=judged.confidence,
            exit_reason=exit_reason,
            exit_detail=judge.detail or _detail(exit_reason, job, limit),
        )
