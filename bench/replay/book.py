"""The replay book: every known question of ../shared/data with the answer to replay.

GSM8K questions get GPT-4's recorded response (RouteLLM's gsm8k_responses.csv, joined on
the question text); the other tasks get their gold answer. A reply says which it is.

Questions are found in a user message by their words (case, punctuation and white space
ignored): the whole message first, else the longest known question it contains, so that
a question wrapped in instructions ("Answer briefly. Question: ...") still matches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from router.learning import datasets
from router.learning.importers import import_routellm

# Shorter questions ("who is obama") match only a whole message: inside a longer text
# their words appear too easily by chance.
MIN_CONTAINED_WORDS = 4
# Contained questions are looked up by their first words.
_KEY_WORDS = MIN_CONTAINED_WORDS

_NOT_WORD = re.compile(r"[\W_]+")


class ReplySource(StrEnum):
    RECORDED = "recorded"  # a real model's recorded response (GPT-4 on GSM8K)
    GOLD = "gold"  # the data set's gold answer: better than any real model
    FALLBACK = "fallback"  # an unknown question, answered with the fixed fallback text


REPLY_MODELS = {
    ReplySource.RECORDED: "replay-gpt4",
    ReplySource.GOLD: "replay-gold",
    ReplySource.FALLBACK: "replay-fallback",
}


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    source: ReplySource
    question_id: str  # "gsm8k/12"; "" for the fallback
    task: str

    @property
    def model(self) -> str:
        return REPLY_MODELS[self.source]


@dataclass(frozen=True, slots=True)
class Found:
    reply: Reply
    # "whole": the message is the question; "contained": the question is inside it.
    match: str


def words(text: str) -> tuple[str, ...]:
    """Lower-case words: 'Janet's ducks: 16 eggs.' and 'JANET S DUCKS 16 EGGS' agree."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return tuple(_NOT_WORD.sub(" ", folded).split())


def gold_reply_text(gold: str) -> str:
    """A marked answer, which `sllm.answers.extract_answer` reads in every answer format."""
    return f"Answer: {gold}"


class ReplayBook:
    """Known questions by their words; the first added wins for a question seen twice."""

    def __init__(self) -> None:
        self._by_words: dict[tuple[str, ...], Reply] = {}
        self._by_first_words: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._by_words)

    def add(self, question: str, reply: Reply) -> None:
        key = words(question)
        if not key:
            return
        if key in self._by_words:
            self.duplicates += 1
            return
        self._by_words[key] = reply
        if len(key) >= MIN_CONTAINED_WORDS:
            self._by_first_words.setdefault(key[:_KEY_WORDS], []).append(key)

    def find(self, message: str) -> Found | None:
        said = words(message)
        if (whole := self._by_words.get(said)) is not None:
            return Found(whole, "whole")
        longest: tuple[str, ...] = ()
        for start in range(len(said) - _KEY_WORDS + 1):
            for candidate in self._by_first_words.get(said[start : start + _KEY_WORDS], ()):
                if (
                    len(candidate) > len(longest)
                    and said[start : start + len(candidate)] == candidate
                ):
                    longest = candidate
        return Found(self._by_words[longest], "contained") if longest else None

    def count(self, source: ReplySource) -> int:
        return sum(reply.source is source for reply in self._by_words.values())


def recorded_gsm8k_responses(data: Path) -> dict[tuple[str, ...], str]:
    """GPT-4's response to each GSM8K test question, by the question's words."""
    rows = import_routellm([data / "routellm" / "gsm8k" / "gsm8k_responses.csv"])
    return {words(row.prompt): row.cloud_answer for row in rows if row.cloud_answer}


def load_book(data: Path | None = None, *, tasks: Iterable[str] = datasets.TASKS) -> ReplayBook:
    """Every question of `tasks` (default: all seven) from ../shared/data."""
    data = data or datasets.default_data_dir()
    recorded = recorded_gsm8k_responses(data)
    book = ReplayBook()
    for task in tasks:
        for question in datasets.load(task, data):
            response = recorded.get(words(question.prompt)) if task == "gsm8k" else None
            if response is not None:
                reply = Reply(response, ReplySource.RECORDED, question.id, task)
            else:
                reply = Reply(
                    gold_reply_text(question.gold[0]), ReplySource.GOLD, question.id, task
                )
            book.add(question.prompt, reply)
    return book
