"""The early-exit rules, judged after every token by an `ExitJudge`.

The judge sees only text pieces and their confidence, never the model, so the same rules
run live in the generation loop and offline over recorded generations (threshold tuning).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from edge_worker.confidence import ConfidenceSummary, ConfidenceTracker, TokenChoice
from edge_worker.options import OptionTokens, answer_token
from sllm.answers import AnswerFormat, AnswerSpan, find_answer

# A line that opens a list item ("2.", "3)", "- ", "Step 4:"): an answer marked there is one
# step of a list the model may go on with ("1. The answer is yes.\n2. The answer is no."),
# not its final answer line.
_LIST_ITEM = re.compile(r"\s*(?:\d+[.)]|[-*\u2022]|step\s*\d+\s*:)", re.IGNORECASE)
# A line of fewer words is no evidence of a loop ("Step 2:", "14 + 6 = 20").
_LOOP_LINE_MIN_WORDS = 3


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
    # Loop detection, 0: off. COLLAPSE when the last this-many tokens repeat an earlier
    # stretch verbatim, or when a finished line repeats an earlier one.
    collapse_repeat_tokens: int


@dataclass(frozen=True, slots=True)
class Judged:
    """A generation as the judge saw it, ready to report."""

    text: str  # without the primer
    final_answer: str | None
    confidence: ConfidenceSummary
    completion_tokens: int


class ExitJudge:
    """Follows one generation token by token and says when a rule ends it.

    `primer` is text the reply was begun with (it counts for finding a marked answer but
    is not generated, so it is not part of the reported text).
    """

    def __init__(
        self,
        primer: str,
        fmt: AnswerFormat,
        rules: ExitRules,
        options: OptionTokens | None = None,
    ) -> None:
        self._primer = primer
        self._fmt = fmt
        self._rules = rules
        self._options = options
        self._choices: list[TokenChoice] = []
        self._text = primer
        self._token_ends: list[int] = []  # end offset in the text of every token
        self._tracker = ConfidenceTracker(window=rules.collapse_window)
        self._pieces: list[str] = []
        self._seen_stretches: set[tuple[str, ...]] = set()
        self._seen_lines: set[str] = set()
        self._line_start = len(primer)  # where the line being written starts
        # Why a rule fired, in words, once one has.
        self.detail = ""

    @property
    def completion_tokens(self) -> int:
        return len(self._token_ends)

    def add(self, piece: str, choice: TokenChoice) -> ExitReason | None:
        """Takes the next token; SETTLED or COLLAPSE when generation should stop here."""
        self._tracker.add(choice)
        if self._options is not None:
            self._choices.append(choice)
        self._text += piece
        self._token_ends.append(len(self._text))
        self._pieces.append(piece)
        if not self._rules.enabled:
            return None
        looping = self._looping()  # records every stretch and line, so it runs every token
        if self._settled():
            return ExitReason.SETTLED
        if self._collapsed():
            return ExitReason.COLLAPSE
        if looping:
            return ExitReason.COLLAPSE
        return None

    def _looping(self) -> bool:
        """Whether the generation has just repeated itself: its last
        `collapse_repeat_tokens` pieces, worded text (at least one word per two tokens, so
        that a number or a name copied again, one token per digit, is no loop), repeat an
        earlier stretch; or a finished line repeats an earlier line, list numbers aside
        (a numbered list that keeps restating one line: no verbatim stretch sees it)."""
        size = self._rules.collapse_repeat_tokens
        if size == 0:
            return False
        for line in self._finished_lines():
            if line in self._seen_lines:
                self.detail = f"the line {line!r} repeats an earlier line"
                return True
            self._seen_lines.add(line)
        if len(self._pieces) < size:
            return False
        stretch = tuple(self._pieces[-size:])
        if stretch not in self._seen_stretches:
            self._seen_stretches.add(stretch)
            return False
        if len("".join(stretch).split()) < size // 2:
            return False
        self.detail = f"the last {size} tokens repeat earlier text verbatim"
        return True

    def _finished_lines(self) -> Iterator[str]:
        """Lines finished since the last call, without list numbers, lower case; only
        those of `_LOOP_LINE_MIN_WORDS` words or more."""
        while (end := self._text.find("\n", self._line_start)) != -1:
            line = self._text[self._line_start : end]
            self._line_start = end + 1
            item = _LIST_ITEM.match(line)
            words = line[item.end() if item else 0 :].lower().split()
            if len(words) >= _LOOP_LINE_MIN_WORDS:
                yield " ".join(words)

    def _answer_logprob(self, span: AnswerSpan) -> float:
        """Mean log-probability of the tokens overlapping the answer's characters."""
        ends, final = self._token_ends, len(self._token_ends) - 1
        first = answer_token(ends, span.start)
        first = final if first is None else first
        last = next((i for i, end in enumerate(ends) if end >= span.end), final)
        return self._tracker.mean_over(first, last + 1)

    def _settled(self) -> bool:
        span = find_answer(self._text, self._fmt, marked_only=True)
        if span is None or not span.complete or span.end <= len(self._primer):
            return False
        line_start = self._text.rfind("\n", 0, span.start) + 1
        if _LIST_ITEM.match(self._text, line_start):
            return False
        logprob = self._answer_logprob(span)
        if logprob < self._rules.settle_min_logprob:
            return False
        self.detail = (
            f"answer {span.value!r} complete; its mean logprob {logprob:.2f} >= "
            f"{self._rules.settle_min_logprob:.3g}"
        )
        return True

    def _collapsed(self) -> bool:
        rules = self._rules
        collapsed = (
            self.completion_tokens >= max(rules.collapse_min_tokens, rules.collapse_window)
            and self._tracker.window_mean < rules.collapse_max_logprob
        )
        if collapsed:
            self.detail = (
                f"mean logprob {self._tracker.window_mean:.2f} over the last "
                f"{rules.collapse_window} tokens < {rules.collapse_max_logprob:.3g}"
            )
        return collapsed

    def _option_share(self, answer: AnswerSpan) -> float:
        index = answer_token(self._token_ends, answer.start)
        if self._options is None or index is None:
            return 0.0
        choice = self._choices[index]
        assert choice.options is not None
        return self._options.share(choice.options, choice.token, answer.value)

    def finish(self, tail: str = "") -> Judged:
        """The outcome, once generation stopped; `tail` is text still held by the decoder."""
        text = self._text + tail
        answer = find_answer(text, self._fmt)
        if answer is not None and answer.end <= len(self._primer):
            answer = None  # only the primer matched: the model gave no answer
        answer_mean = None if answer is None else self._answer_logprob(answer)
        return Judged(
            text=text[len(self._primer) :],
            final_answer=None if answer is None else answer.value,
            confidence=self._tracker.summary(
                answer_mean, 0.0 if answer is None else self._option_share(answer)
            ),
            completion_tokens=self.completion_tokens,
        )
