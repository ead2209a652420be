"""What a question's shape says about its difficulty, whatever its subject.

The difficulty model's TF-IDF words learn which subject is hard; on subjects it never saw
they say nothing. The question's length, how many numbers it holds (and decimals), how
many sentences, and words that announce arithmetic (percent, half, each, remaining...)
carry over: on RouteLLM's MMLU with 12 subjects held out they lift the difficulty model's
AUROC from 0.498 to 0.583 (docs/benchmarks.md). A few regular expressions: about 10 us a
query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_SENTENCE_END = re.compile(r"[.?!](?:\s|$)")
_ARITHMETIC_CUES = re.compile(
    r"\b(?:percent|half|twice|times|each|every|per|remaining|left|more than|less than|"
    r"fraction|average|total)\b|%"
)


def query_shape(query: str) -> dict[str, float]:
    numbers = _NUMBER.findall(query)
    return {
        "query_log_chars": math.log1p(len(query)),
        "query_log_numbers": math.log1p(len(numbers)),
        "query_log_decimals": math.log1p(sum("." in n or "," in n for n in numbers)),
        "query_log_sentences": math.log1p(len(_SENTENCE_END.findall(query))),
        "query_log_arithmetic_cues": math.log1p(len(_ARITHMETIC_CUES.findall(query.lower()))),
    }


QUERY_SHAPE_NAMES: tuple[str, ...] = tuple(query_shape(""))


def query_shape_rows(names: Sequence[str], queries: Sequence[str]) -> npt.NDArray[np.float32]:
    """The difficulty model's `signals` input: a row per query, in the order of `names`."""
    rows = [query_shape(query) for query in queries]
    return np.array([[row[name] for name in names] for row in rows], dtype=np.float32).reshape(
        len(queries), len(names)
    )
