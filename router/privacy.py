"""Personal data in prompts: which kinds a text holds (never the values), and the text with
each value replaced by its kind (`[EMAIL]`) for storage.

Kinds: e-mail addresses; phone numbers written as phone numbers are (a leading `+`, or
grouped like `(555) 123-4567` or `020 7946 0958`: a bare run of digits is a number, not a
phone); payment cards (13-19 digits from a card network's range that pass the Luhn check);
IBANs (their mod-97 check digits); and the patterns of `router.pii.patterns`. A check
digit keeps ordinary numbers (years, prices, quantities) from counting: a random 16-digit
number passes Luhn one time in ten, a random IBAN-shaped string mod-97 one in 97.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from router.edge_client import EdgeAnswer
from router.outcomes import LoggedRequest
from sllm.chat import ChatMessage
from sllm.v1 import edge_pb2

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Digits that continue a group before or after them are part of a longer number.
_PHONE = re.compile(
    r"(?<![\w+])(?<!\d[ .-])(?:"
    # International: +, country code, then groups.
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}"
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567.
    r"|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}"
    # National with a trunk 0: 020 7946 0958, 06 12 34 56 78.
    r"|0\d{1,4}(?:[ .-]\d{2,4}){2,4}"
    r")(?![\w-])(?![ .]\d)"
)
_CARD = re.compile(r"(?<![\w-])(?<!\d[ .])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w-])(?![ .]\d)")
_IBAN = re.compile(
    r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\w-])", re.IGNORECASE
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616: the country and check digits moved to the end, letters as 10-35, the
    number mod 97 is 1."""
    compact = iban.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _card(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _phone(text: str) -> bool:
    return 8 <= len(_digits(text)) <= 15


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


# kind, pattern, and the check a match must also pass.
_BUILT_IN: tuple[tuple[str, re.Pattern[str], Callable[[str], bool]], ...] = (
    ("email", _EMAIL, lambda _: True),
    ("iban", _IBAN, iban_ok),
    ("credit_card", _CARD, _card),
    ("phone", _PHONE, _phone),
)


class PiiDetector:
    def __init__(self, patterns: Mapping[str, str] | None = None) -> None:
        """`patterns`: more kinds, kind -> regular expression. ValueError naming the kind
        whose expression does not compile."""
        self._checks = list(_BUILT_IN)
        for kind, pattern in (patterns or {}).items():
            try:
                self._checks.append((kind, re.compile(pattern), lambda _: True))
            except re.error as error:
                raise ValueError(f"router.pii.patterns.{kind}: {error}") from None

    def findings(self, text: str) -> list[Finding]:
        """Non-overlapping, in order; where two overlap, the one found first in the list of
        kinds wins (an IBAN's digits are not also a card)."""
        found: list[Finding] = []
        for kind, pattern, check in self._checks:
            for match in pattern.finditer(text):
                overlaps = any(f.start < match.end() and match.start() < f.end for f in found)
                if match.group() and check(match.group()) and not overlaps:
                    found.append(Finding(kind, match.start(), match.end()))
        return sorted(found, key=lambda f: f.start)

    def kinds(self, texts: Iterable[str]) -> tuple[str, ...]:
        """The kinds found in any of `texts`, sorted."""
        return tuple(sorted({f.kind for text in texts for f in self.findings(text)}))

    def mask(self, text: str) -> str:
        """Each value found replaced by its kind: `[EMAIL]`, `[IBAN]`, ..."""
        parts, last = [], 0
        for finding in self.findings(text):
            parts += [text[last : finding.start], f"[{finding.kind.upper()}]"]
            last = finding.end
        return "".join([*parts, text[last:]])


def masked(entry: LoggedRequest, detector: PiiDetector) -> LoggedRequest:
    """`entry` as the outcome log may keep it: the prompt, the messages and every answer
    (an answer may quote the prompt) with their personal data masked."""
    # The same texts come up more than once (the answer is the edge's text, the query its
    # last message): each is searched once.
    seen: dict[str, str] = {}

    def mask(text: str) -> str:
        if text not in seen:
            seen[text] = detector.mask(text)
        return seen[text]

    result = entry.result
    edge = result.edge
    if edge is not None:
        summary = edge_pb2.EdgeSummary()
        summary.CopyFrom(edge.summary)
        summary.text, summary.final_answer = mask(summary.text), mask(summary.final_answer)
        edge = EdgeAnswer(summary)
    return dataclasses.replace(
        entry,
        query_text=mask(entry.query_text),
        messages=[ChatMessage(m.role, mask(m.content)) for m in entry.messages],
        result=dataclasses.replace(
            result,
            text=mask(result.text),
            final_answer=mask(result.final_answer),
            cloud_text=None if result.cloud_text is None else mask(result.cloud_text),
            edge=edge,
        ),
    )
