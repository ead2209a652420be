"""How sure the edge is of a multiple-choice or yes/no answer: the probability its
next-token distribution gives the chosen option, against the other options, at the
token where it wrote the answer.

The text of a one-letter answer says nothing of how close the runner-up was; a
distribution with 0.9 on "B" and one with 0.3 on "B", 0.28 on "C" read the same. Every
token of the vocabulary that spells an option ("B", " B", " yes", "No", ...) is found
once per model and format (0.1 s for SmolLM2's 49,152 tokens, at the worker's start); at
each generated token only those few logits are read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sllm.answers import AnswerFormat

# What a token spells (stripped; yes/no in lower case) -> the option it stands for, as
# `sllm.answers.find_answer` reads it: choice letters in capitals only (" a" is an article).
_OPTIONS: dict[AnswerFormat, dict[str, str]] = {
    AnswerFormat.CHOICE_LETTER: {letter: letter for letter in "ABCDE"},
    AnswerFormat.YES_NO: {"yes": "yes", "true": "yes", "no": "no", "false": "no"},
}


@dataclass(frozen=True)
class OptionTokens:
    """The tokens that spell an option, and the option each stands for."""

    ids: npt.NDArray[np.intp]
    values: tuple[str, ...]

    def share(self, logprobs: npt.NDArray[np.float32], chosen_token: int, value: str) -> float:
        """P(the chosen option) / P(any option) from the option tokens' log-probabilities
        at the answer's token; 0 when that token spells no option (as "No," may)."""
        if chosen_token not in self.ids:
            return 0.0
        probabilities = np.exp(logprobs.astype(np.float64) - logprobs.max())
        chosen = sum(p for p, v in zip(probabilities, self.values, strict=True) if v == value)
        return float(chosen / probabilities.sum())


def option_tokens(
    n_vocab: int, token_bytes: Callable[[int], bytes], fmt: AnswerFormat
) -> OptionTokens | None:
    """None for formats without options (NUMBER, FREE_TEXT) or a vocabulary without
    their tokens."""
    spelled = _OPTIONS.get(fmt)
    if spelled is None:
        return None
    ids: list[int] = []
    values: list[str] = []
    for token in range(n_vocab):
        word = token_bytes(token).decode("utf-8", errors="ignore").strip()
        if fmt is AnswerFormat.YES_NO:
            word = word.lower()
        if word in spelled:
            ids.append(token)
            values.append(spelled[word])
    if len(set(values)) < 2:
        return None
    return OptionTokens(np.array(ids, dtype=np.intp), tuple(values))


def answer_token(token_ends: Sequence[int], answer_start: int) -> int | None:
    """Index of the first token that reaches into the answer (ends after its start)."""
    return next((i for i, end in enumerate(token_ends) if end > answer_start), None)
