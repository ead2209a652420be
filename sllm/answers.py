"""Answer formats: finding the final answer in a model's text and matching it against gold.

A *marked* answer follows an explicit marker ("Answer: 42", "the answer is B", "#### 42");
the edge worker asks for one and settles only on it. Unmarked text falls back to the
format's own pattern (the last number, a lone choice letter, the first yes/no).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class AnswerFormat(StrEnum):
    FREE_TEXT = "FREE_TEXT"
    NUMBER = "NUMBER"
    CHOICE_LETTER = "CHOICE_LETTER"
    YES_NO = "YES_NO"


@dataclass(frozen=True, slots=True)
class AnswerSpan:
    """Where the answer sits in the text ([start, end) character offsets), normalized."""

    start: int
    end: int
    value: str
    # The text goes on past the answer, so more tokens cannot change it ("1" vs "12").
    complete: bool


_MARKER = re.compile(r"(?:\banswer\s*(?:is\b\s*:?|:|=)|####)[ \t]*", re.IGNORECASE)
_NUMBER = re.compile(r"[-\u2212]?\$?\d[\d,]*(?:\.\d+)?")
_LETTER_IN_LINE = re.compile(r"\(?\b([A-E])\b\)?")
# "(B)" anywhere, or "B)" / "B." / a lone "B" opening a line (not "A cat ...").
_LETTER_UNMARKED = re.compile(r"\(([A-E])\)|^\s*([A-E])(?:[).:]|[ \t]*$)", re.MULTILINE)
_YES_NO = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_YES_WORDS = frozenset({"yes", "true"})
# A line break, or a full stop before white space ("3.5" is no sentence end, nor is the
# full stop of an initial, as in "Lyndon B. Johnson").
_SENTENCE_END = re.compile(r"\n|(?<!\b[A-Z])\.(?=\s)")


def normalize_number(raw: str) -> str | None:
    """'1,000' -> '1000', '$3.50' -> '3.5', '5.0' -> '5'; None when it is no number."""
    cleaned = raw.replace(",", "").replace("$", "").replace("\u2212", "-").rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def _ends_cleanly(text: str, end: int, fmt: AnswerFormat) -> bool:
    if end >= len(text) or text[end].isalnum():
        return False
    if fmt is AnswerFormat.NUMBER and text[end] in ".,":
        return end + 1 < len(text) and not text[end + 1].isdigit()
    return True


def _in_segment(segment: str, offset: int, fmt: AnswerFormat, *, marked: bool) -> AnswerSpan | None:
    """The answer inside `segment`, which starts at `offset` of the whole text."""
    start: int
    end: int
    value: str | None
    if fmt is AnswerFormat.NUMBER:
        numbers = list(_NUMBER.finditer(segment))
        if not numbers:
            return None
        # The last number: "Answer: 3 + 4 = 7", "so she has 7".
        found = numbers[-1]
        start, end, value = found.start(), found.end(), normalize_number(found.group())
    elif fmt is AnswerFormat.CHOICE_LETTER:
        letter = (_LETTER_IN_LINE if marked else _LETTER_UNMARKED).search(segment)
        if letter is None:
            return None
        group = 1 if letter.group(1) else 2
        start, end, value = letter.start(group), letter.end(group), letter.group(group)
    elif fmt is AnswerFormat.YES_NO:
        word = _YES_NO.search(segment)
        if word is None:
            return None
        start, end = word.start(), word.end()
        value = "yes" if word.group(1).lower() in _YES_WORDS else "no"
    else:
        stripped = segment.strip()
        if not stripped:
            return None
        start = segment.index(stripped)
        end, value = start + len(stripped), stripped
    if value is None:
        return None
    return AnswerSpan(offset + start, offset + end, value, complete=False)


def _sentence_after(text: str, position: int) -> tuple[str, bool]:
    """The text from `position` to the end of its line or sentence, and whether that end
    has been written yet (until then, more tokens may extend the answer)."""
    end = _SENTENCE_END.search(text, position)
    return (text[position:], False) if end is None else (text[position : end.start()], True)


def find_answer(text: str, fmt: AnswerFormat, *, marked_only: bool = False) -> AnswerSpan | None:
    """The final answer in `text`: the last marked one, else (unless marked_only) unmarked."""
    for marker in reversed(list(_MARKER.finditer(text))):
        sentence, closed = _sentence_after(text, marker.end())
        span = _in_segment(sentence, marker.end(), fmt, marked=True)
        if span is not None:
            if fmt in (AnswerFormat.NUMBER, AnswerFormat.FREE_TEXT):
                # "Answer: 3 + 4 = 7": the answer is known once the sentence ends.
                complete = closed
            else:
                complete = _ends_cleanly(text, span.end, fmt)
            return AnswerSpan(span.start, span.end, span.value, complete)
    if marked_only:
        return None
    span = _in_segment(text, 0, fmt, marked=False)
    if span is None:
        return None
    return AnswerSpan(span.start, span.end, span.value, _ends_cleanly(text, span.end, fmt))


def extract_answer(text: str, fmt: AnswerFormat | str) -> str | None:
    """The normalized final answer of `text` in format `fmt`, or None when there is none.

    NUMBER -> '42' / '3.5'; CHOICE_LETTER -> 'A'..'E'; YES_NO -> 'yes' / 'no';
    FREE_TEXT -> the marked answer line, else the whole text stripped.
    """
    span = find_answer(text, AnswerFormat(fmt))
    return None if span is None else span.value


def _normalize_text(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    lowered = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(word for word in lowered.split() if word not in {"a", "an", "the"})


def _matches_one(predicted: str, gold: str, fmt: AnswerFormat) -> bool:
    if fmt is AnswerFormat.NUMBER:
        want, got = normalize_number(gold.strip()), normalize_number(predicted.strip())
        if want is None or got is None:
            return False
        return math.isclose(float(want), float(got), rel_tol=1e-6, abs_tol=1e-6)
    if fmt is AnswerFormat.CHOICE_LETTER:
        return predicted.strip().upper() == gold.strip().upper()
    if fmt is AnswerFormat.YES_NO:
        as_yes_no = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
        return as_yes_no.get(predicted.strip().lower()) == as_yes_no.get(gold.strip().lower(), "?")
    want_text, got_text = _normalize_text(gold), _normalize_text(predicted)
    if not want_text:
        # A gold answer made only of articles and punctuation ("A+"): compare as written.
        written = gold.strip().lower()
        return bool(written) and written in predicted.lower().split()
    # Short factual answers: the gold phrase appearing as whole words counts.
    return f" {want_text} " in f" {got_text} "


def answers_match(
    predicted: str | None, gold: str | Sequence[str], fmt: AnswerFormat | str
) -> bool:
    """Whether an extracted answer equals the gold one (any of several accepted golds)."""
    if predicted is None:
        return False
    golds = [gold] if isinstance(gold, str) else list(gold)
    return any(_matches_one(predicted, one, AnswerFormat(fmt)) for one in golds)
