"""One generation, start to finish: prefill, greedy decode with confidence, early exit.

Plain blocking code: the engine runs it in its model thread. It checks the cancel flag
and the deadline before every token, so a cancelled or expired call stops within one.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_worker.confidence import ConfidenceSummary, ConfidenceTracker, TokenScorer
from edge_worker.early_exit import ExitReason, ExitRules, answer_logprob, collapsed, settled
from edge_worker.model import EdgeModel
from edge_worker.prompts import ReasoningMode
from sllm.answers import AnswerFormat, find_answer


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


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def _interruption(job: PreparedGeneration, cancelled: threading.Event) -> ExitReason | None:
    if cancelled.is_set():
        return ExitReason.CANCELLED
    if job.deadline is not None and time.monotonic() >= job.deadline:
        return ExitReason.BUDGET
    return None


def generate(
    model: EdgeModel,
    job: PreparedGeneration,
    emit: Callable[[Delta], None],
    cancelled: threading.Event,
) -> GenerationResult:
    with model.lock:
        started = time.perf_counter()
        scorer = TokenScorer(model.n_vocab)
        tracker = ConfidenceTracker(window=job.rules.collapse_window)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = job.primer
        token_ends: list[int] = []
        limit = min(job.max_tokens, model.n_ctx - len(job.prompt_tokens))
        # A job that waited past its deadline (or whose caller left) never touches the model.
        exit_reason = _interruption(job, cancelled)
        if exit_reason is None:
            model.prefill(job.prompt_tokens)
        prefill_ms = _ms(started)
        decode_started = time.perf_counter()
        pending: int | None = None
        while exit_reason is None:
            exit_reason = _interruption(job, cancelled)
            if exit_reason is not None:
                break
            if len(token_ends) >= limit:
                exit_reason = ExitReason.LENGTH
                break
            if pending is not None:
                model.feed(pending)
            choice = scorer.choose(model.last_logits())
            if model.is_end(choice.token):
                exit_reason = ExitReason.STOP
                break
            tracker.add(choice)
            piece = decoder.decode(model.token_bytes(choice.token))
            text += piece
            token_ends.append(len(text))
            emit(Delta(piece, choice.logprob, choice.entropy, len(token_ends) - 1))
            pending = choice.token
            if not job.rules.enabled:
                continue
            if settled(text, len(job.primer), job.answer_format, token_ends, tracker, job.rules):
                exit_reason = ExitReason.SETTLED
            elif collapsed(tracker, job.rules):
                exit_reason = ExitReason.COLLAPSE
        text += decoder.decode(b"", final=True)
        answer = find_answer(text, job.answer_format)
        if answer is not None and answer.end <= len(job.primer):
            answer = None  # only the primer matched: the model gave no answer
        answer_mean = None if answer is None else answer_logprob(answer, token_ends, tracker)
        return GenerationResult(
            text=text[len(job.primer) :],
            final_answer=None if answer is None else answer.value,
            prompt_tokens=len(job.prompt_tokens),
            completion_tokens=len(token_ends),
            prefill_ms=prefill_ms,
            decode_ms=_ms(decode_started),
            confidence=tracker.summary(answer_mean),
            exit_reason=exit_reason,
        )
