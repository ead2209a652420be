"""The early-exit rules, judged after every token."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edge_worker.confidence import ConfidenceTracker
from sllm.answers import AnswerFormat, AnswerSpan, find_answer


class ExitReason(StrEnum):
    SETTLED = "SETTLED"  # the marked answer is complete and confident
    COLLAPSE = "COLLAPSE"  # confidence collapsed: the caller should escalate
    BUDGET = "BUDGET"  # the time budget ran out
    LENGTH = "LENGTH"  # max_tokens or the context was reached
    STOP = "STOP"  # the model ended its reply
    CANCELLED = "CANCELLED"  # the caller went away; never reported to a caller


@dataclass(frozen=True, slots=True)
class ExitRules:
    """Thresholds of one request (the worker's defaults with the request's overrides)."""

    enabled: bool
    settle_min_logprob: float
    collapse_max_logprob: float
    collapse_window: int
    collapse_min_tokens: int


def answer_logprob(span: AnswerSpan, token_ends: list[int], tracker: ConfidenceTracker) -> float:
    """Mean log-probability of the tokens overlapping the answer's characters."""
    final = len(token_ends) - 1
    first = next((i for i, end in enumerate(token_ends) if end > span.start), final)
    last = next((i for i, end in enumerate(token_ends) if end >= span.end), final)
    return tracker.mean_over(first, last + 1)


def settled(
    text: str, offset: int, fmt: AnswerFormat, token_ends: list[int],
    tracker: ConfidenceTracker, rules: ExitRules,
) -> bool:
    """SETTLED: `text` (whose generated part starts at `offset`) holds a complete, confident
    marked answer; `token_ends` are the end offsets of the generated tokens in `text`."""
    span = find_answer(text, fmt, marked_only=True)
    if span is None or not span.complete or span.end <= offset:
        return False
    return answer_logprob(span, token_ends, tracker) >= rules.settle_min_logprob


def collapsed(tracker: ConfidenceTracker, rules: ExitRules) -> bool:
    count = len(tracker.logprobs)
    return (
        count >= max(rules.collapse_min_tokens, rules.collapse_window)
        and tracker.window_mean < rules.collapse_max_logprob
    )
