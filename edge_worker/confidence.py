"""Per-token confidence from one row of logits, and its running summary.

Greedy decoding: the chosen token is the arg-max, so its log-probability is
`-logsumexp(logits - max)`; the entropy of the next-token distribution is
`logsumexp - E_p[logits - max]`. Both cost a few passes over the vocabulary in numpy,
far less than `logits_all=True`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class TokenChoice:
    token: int
    logprob: float
    entropy: float
    # Log-probabilities of the answer format's option tokens (`edge_worker.options`).
    options: npt.NDArray[np.float32] | None = None


class TokenScorer:
    """Chooses the greedy token from a logits row and scores it; reuses one buffer."""

    def __init__(self, n_vocab: int, option_ids: npt.NDArray[np.intp] | None = None) -> None:
        self._shifted = np.empty(n_vocab, dtype=np.float32)
        self._exp = np.empty(n_vocab, dtype=np.float32)
        self._option_ids = option_ids

    def choose(self, logits: npt.NDArray[np.float32]) -> TokenChoice:
        token = int(logits.argmax())
        np.subtract(logits, logits[token], out=self._shifted)
        np.exp(self._shifted, out=self._exp)
        total = float(self._exp.sum(dtype=np.float64))
        log_total = math.log(total)
        expected_shift = float(self._exp.dot(self._shifted)) / total
        options = None
        if self._option_ids is not None:
            options = self._shifted[self._option_ids] - np.float32(log_total)
        return TokenChoice(token, -log_total, max(0.0, log_total - expected_shift), options)


@dataclass(frozen=True, slots=True)
class ConfidenceSummary:
    mean_logprob: float
    min_logprob: float
    mean_entropy: float
    max_entropy: float
    answer_mean_logprob: float
    min_window_mean_logprob: float
    score: float
    # P(the chosen option) / P(any option) at the answer's token; 0 without options.
    option_share: float = 0.0


@dataclass
class ConfidenceTracker:
    """Running confidence of one generation, with the sliding window COLLAPSE reads."""

    window: int
    logprobs: list[float] = field(default_factory=list)
    entropies: list[float] = field(default_factory=list)
    _recent: deque[float] = field(init=False)
    _recent_sum: float = 0.0
    min_window_mean: float = 0.0

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window)

    def add(self, choice: TokenChoice) -> None:
        self.logprobs.append(choice.logprob)
        self.entropies.append(choice.entropy)
        if len(self._recent) == self.window:
            self._recent_sum -= self._recent[0]
        self._recent.append(choice.logprob)
        self._recent_sum += choice.logprob
        if len(self._recent) == self.window:
            self.min_window_mean = min(self.min_window_mean, self.window_mean)

    @property
    def window_mean(self) -> float:
        """Mean log-probability of the last `window` tokens (of all, while fewer)."""
        return self._recent_sum / len(self._recent) if self._recent else 0.0

    def mean_over(self, first: int, last: int) -> float:
        """Mean log-probability of tokens first..last-1."""
        chosen = self.logprobs[first:last]
        return sum(chosen) / len(chosen) if chosen else 0.0

    def summary(
        self, answer_mean_logprob: float | None, option_share: float = 0.0
    ) -> ConfidenceSummary:
        if not self.logprobs:
            return ConfidenceSummary(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        mean_logprob = sum(self.logprobs) / len(self.logprobs)
        window_min = self.min_window_mean
        if len(self.logprobs) < self.window:
            window_min = mean_logprob
        basis = mean_logprob if answer_mean_logprob is None else answer_mean_logprob
        return ConfidenceSummary(
            mean_logprob=mean_logprob,
            min_logprob=min(self.logprobs),
            mean_entropy=sum(self.entropies) / len(self.entropies),
            max_entropy=max(self.entropies),
            answer_mean_logprob=answer_mean_logprob or 0.0,
            min_window_mean_logprob=window_min,
            score=math.exp(basis),
            option_share=option_share,
        )
