"""The signals the cascade model reads once the edge has answered.

Two kinds, both named so that a policy can list the ones it was trained on:
- the edge's own confidence statistics, from its `EdgeSummary` (`EdgeSignals`);
- features of the answer text read against the query (`answer_text_features`): recorded
  data sets such as RouteLLM's carry no log-probabilities, only text, and the text says a
  lot (an unfinished answer, arithmetic that does not check out, numbers of the question
  left unused);
- the pre-generation p_edge_ok of a k-NN difficulty model (`DIFFICULTY_SIGNAL`), which
  the router has computed before the edge ran: what questions like this one did.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import numpy.typing as npt

from sllm import enums

if TYPE_CHECKING:
    from sllm.v1 import edge_pb2

# "": the edge did not say (not run, or a reason this policy runtime does not know).
ExitReason = Literal[enums.ExitReason, ""]
EXIT_REASONS: tuple[ExitReason, ...] = get_args(ExitReason)


@dataclass(frozen=True, slots=True)
class EdgeSignals:
    """The edge's confidence in one answer; log-probabilities in nats."""

    mean_logprob: float = 0.0
    min_logprob: float = 0.0
    mean_entropy: float = 0.0
    max_entropy: float = 0.0
    answer_mean_logprob: float = 0.0
    min_window_mean_logprob: float = 0.0
    confidence_score: float = 0.0
    completion_tokens: int = 0
    answer_found: bool = False
    exit_reason: ExitReason = ""
    # CHOICE_LETTER / YES_NO: the chosen option's share of the options' probability at
    # the answer's token (0: no options, or an edge that does not report it).
    option_share: float = 0.0

    @classmethod
    def from_summary(cls, summary: edge_pb2.EdgeSummary) -> EdgeSignals:
        confidence = summary.confidence
        return cls(
            mean_logprob=confidence.mean_logprob,
            min_logprob=confidence.min_logprob,
            mean_entropy=confidence.mean_entropy,
            max_entropy=confidence.max_entropy,
            answer_mean_logprob=confidence.answer_mean_logprob,
            min_window_mean_logprob=confidence.min_window_mean_logprob,
            confidence_score=confidence.score,
            completion_tokens=summary.completion_tokens,
            answer_found=summary.answer_found,
            exit_reason=enums.EXIT_REASONS.names.get(summary.exit_reason, ""),
            option_share=confidence.option_share,
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> EdgeSignals:
        """From a logged row (unknown keys ignored, missing keys take the defaults)."""
        known = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in known}
        kept["exit_reason"] = _exit_reason(str(kept.get("exit_reason", "")))
        for name in _NUMERIC_FIELDS:
            if name in kept:
                kept[name] = _FIELD_TYPES[name](kept[name])
        return cls(**kept)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def value(self, name: str) -> float:
        """One named signal as a number (see `EDGE_SIGNAL_NAMES`)."""
        if name.startswith("exit_"):
            return float(self.exit_reason == name.removeprefix("exit_"))
        if name == "log_completion_tokens":
            return math.log1p(self.completion_tokens)
        if name not in _NUMERIC_FIELDS:
            raise KeyError(f"unknown edge signal {name!r}")
        return float(getattr(self, name))

    def as_vector(self, names: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.array([self.value(name) for name in names], dtype=np.float32)


def _exit_reason(text: str) -> ExitReason:
    if text not in EXIT_REASONS:
        # UNSPECIFIED or a reason added after this policy runtime: no information.
        return ""
    return text


_NUMERIC_FIELDS = (
    "mean_logprob",
    "min_logprob",
    "mean_entropy",
    "max_entropy",
    "answer_mean_logprob",
    "min_window_mean_logprob",
    "confidence_score",
    "completion_tokens",
    "answer_found",
    "option_share",
)
_FIELD_TYPES: dict[str, type] = {
    name: (int if name == "completion_tokens" else bool if name == "answer_found" else float)
    for name in _NUMERIC_FIELDS
}
EDGE_SIGNAL_NAMES: tuple[str, ...] = (
    *_NUMERIC_FIELDS,
    "log_completion_tokens",
    *(f"exit_{reason}" for reason in EXIT_REASONS if reason),
)


# --- answer text -----------------------------------------------------------------------

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
# GSM8K-style calculator annotations: <<48/2=24>>
_CALCULATION_RE = re.compile(r"<<([^<>=]+)=([^<>]+)>>")
# Inline arithmetic written out: "16 - 3 = 13", "9 * $2 = $18"
_EQUATION_RE = re.compile(
    rf"\$?({_NUMBER})\s*([-+*/x\u00d7\u00f7])\s*\$?({_NUMBER})\s*=\s*\$?({_NUMBER})"
)
_FINAL_MARKER_RE = re.compile(
    r"####|answer is|final answer|\\boxed|^answer\s*:", re.IGNORECASE | re.MULTILINE
)
_HEDGE_RE = re.compile(
    r"\b(?:approximately|assum\w*|however|wait|actually|mistake|unclear|not enough|"
    r"cannot|can't|impossible|round\w*|estimat\w*|not sure|maybe|perhaps|likely|"
    r"re-?evaluate|let me|incorrect)\b",
    re.IGNORECASE,
)
_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_SYMBOLS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "x": operator.mul,
    "\u00d7": operator.mul,
    "/": operator.truediv,
    "\u00f7": operator.truediv,
}


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None
    # 400 digits read as infinity, which no later test (int(), ==) can take.
    return value if math.isfinite(value) else None


def _evaluate(expression: str) -> float | None:
    """+ - * / over numbers only; anything else (names, powers, huge numbers) is unknown."""
    try:
        tree = ast.parse(expression.replace(",", "").replace("$", ""), mode="eval")
    except (SyntaxError, ValueError):
        return None

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError("unsupported")

    try:
        return walk(tree.body)
    except (ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def _agrees(computed: float | None, written: float | None) -> bool | None:
    if computed is None or written is None:
        return None
    return math.isclose(computed, written, rel_tol=1e-2, abs_tol=1e-2)


def _checks(answer: str) -> tuple[int, int]:
    """How many written calculations could be checked, and how many of those are wrong."""
    verdicts: list[bool | None] = [
        _agrees(_evaluate(expression), _number(result))
        for expression, result in _CALCULATION_RE.findall(answer)
    ]
    # Without the annotations, "16 - 3 = <<16-3=13>>13" reads as the equation it writes.
    for left, symbol, right, result in _EQUATION_RE.findall(_CALCULATION_RE.sub("", answer)):
        a, b = _number(left), _number(right)
        if a is None or b is None:
            continue
        try:
            computed: float | None = _SYMBOLS[symbol](a, b)
        except ZeroDivisionError:
            computed = None
        verdicts.append(_agrees(computed, _number(result)))
    checked = [v for v in verdicts if v is not None]
    return len(checked), checked.count(False)


def _numbers(text: str) -> list[float]:
    return [n for n in (_number(m) for m in _NUMBER_RE.findall(text)) if n is not None]


def answer_text_features(query: str, answer: str) -> dict[str, float]:
    """Features of the edge's answer text read against the query (see `TEXT_SIGNAL_NAMES`)."""
    stripped = answer.strip()
    lines = [line for line in stripped.splitlines() if line.strip()]
    answer_numbers = _numbers(stripped)
    query_numbers = set(_numbers(query))
    final = answer_numbers[-1] if answer_numbers else None
    checked, wrong = _checks(stripped)
    marker = _FINAL_MARKER_RE.search(stripped) is not None
    last_line = lines[-1] if lines else ""
    finished = marker and _NUMBER_RE.search(last_line) is not None
    used = (
        len(query_numbers.intersection(answer_numbers)) / len(query_numbers)
        if query_numbers
        else 1.0
    )
    return {
        "text_log_chars": math.log1p(len(stripped)),
        "text_log_lines": math.log1p(len(lines)),
        "text_empty": float(not stripped),
        "text_final_marker": float(marker),
        "text_finished": float(finished or stripped.endswith((".", "!", ")"))),
        "text_has_number": float(final is not None),
        "text_final_is_integer": float(final is not None and final == int(final)),
        "text_final_in_query": float(final is not None and final in query_numbers),
        "text_final_repeats": math.log1p(answer_numbers.count(final)) if final is not None else 0.0,
        "text_log_checked": math.log1p(checked),
        "text_wrong_calculations": float(wrong),
        "text_any_wrong_calculation": float(wrong > 0),
        "text_query_numbers_used": used,
        "text_log_new_numbers": math.log1p(len(set(answer_numbers) - query_numbers)),
        "text_hedges": math.log1p(len(_HEDGE_RE.findall(stripped))),
        "text_questions": math.log1p(stripped.count("?")),
    }


TEXT_SIGNAL_NAMES: tuple[str, ...] = tuple(answer_text_features("", ""))
# The logit of the pre-generation p_edge_ok, cut to [DIFFICULTY_FLOOR, 1 - DIFFICULTY_FLOOR]
# (a share of 0 or 1 among 50 neighbours is not certainty). Read by the cascade model of a
# policy whose difficulty model is the embedding k-NN (docs/learning.md).
DIFFICULTY_SIGNAL = "query_difficulty"
DIFFICULTY_FLOOR = 0.01
SIGNAL_NAMES: frozenset[str] = frozenset(
    EDGE_SIGNAL_NAMES + TEXT_SIGNAL_NAMES + (DIFFICULTY_SIGNAL,)
)
_TEXT = frozenset(TEXT_SIGNAL_NAMES)
# Where non-finite signal values are clipped to (log-probabilities of real tokens stay
# well inside it).
SIGNAL_BOUND = 100.0


def difficulty_logit(p_edge_ok: float) -> float:
    """`DIFFICULTY_SIGNAL`'s value for a pre-generation p_edge_ok."""
    p = min(max(p_edge_ok, DIFFICULTY_FLOOR), 1.0 - DIFFICULTY_FLOOR)
    return math.log(p / (1.0 - p))


def signal_vector(
    names: Sequence[str],
    *,
    query: str,
    answer: str,
    edge: EdgeSignals | None,
    p_edge_ok: float | None = None,
) -> npt.NDArray[np.float32]:
    """The cascade model's `signals` row, in the order the policy lists them.

    Edge signals read 0 when the edge's statistics are unknown (recorded data sets);
    `DIFFICULTY_SIGNAL` reads the pre-generation `p_edge_ok` (0, i.e. p = 0.5, unknown)."""
    # What the query and answer (and the pre-generation score) say; the edge's own for
    # the rest.
    known = answer_text_features(query, answer) if any(n in _TEXT for n in names) else {}
    if DIFFICULTY_SIGNAL in names:
        known[DIFFICULTY_SIGNAL] = 0.0 if p_edge_ok is None else difficulty_logit(p_edge_ok)
    values = [
        known[name] if name in known else (edge.value(name) if edge is not None else 0.0)
        for name in names
    ]
    vector = np.array(values, dtype=np.float32)
    if np.isfinite(vector).all():  # as a rule: nan_to_num costs 15 us on each request
        return vector
    # A -inf log-probability (a token the model gave no mass) or a NaN must not turn
    # p_edge_ok into NaN, which compares False with every threshold.
    return np.nan_to_num(vector, nan=0.0, posinf=SIGNAL_BOUND, neginf=-SIGNAL_BOUND)


def unknown_signals(names: Sequence[str]) -> list[str]:
    return [name for name in names if name not in SIGNAL_NAMES]
