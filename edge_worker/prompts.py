"""Reasoning modes by prompting: what the worker adds to the caller's chat."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from sllm.answers import AnswerFormat
from sllm.chat import ChatMessage


class ReasoningMode(StrEnum):
    DIRECT = "DIRECT"
    STEP_BY_STEP = "STEP_BY_STEP"


_FORMAT_HINTS = {
    AnswerFormat.FREE_TEXT: "a short phrase",
    AnswerFormat.NUMBER: "a number",
    AnswerFormat.CHOICE_LETTER: "the letter of the correct choice",
    AnswerFormat.YES_NO: "yes or no",
}

# DIRECT mode with a structured format begins the reply with the marker itself, so even a
# small model answers at once and the answer is marked (SETTLED only trusts marked answers).
DIRECT_PRIMER = "Answer:"


def instruction(mode: ReasoningMode, fmt: AnswerFormat) -> str:
    hint = _FORMAT_HINTS[fmt]
    if mode is ReasoningMode.STEP_BY_STEP:
        return f"Think step by step. Then end with a last line 'Answer: <{hint}>'."
    if fmt is AnswerFormat.FREE_TEXT:
        return "Answer directly, without explaining your reasoning."
    return f"Reply with the final answer only, as {hint}."


def primer(mode: ReasoningMode, fmt: AnswerFormat) -> str:
    """Text the reply starts with; free text in DIRECT mode is the whole reply, unprimed."""
    if mode is ReasoningMode.DIRECT and fmt is not AnswerFormat.FREE_TEXT:
        return DIRECT_PRIMER
    return ""


def with_instruction(
    messages: tuple[ChatMessage, ...], mode: ReasoningMode, fmt: AnswerFormat
) -> tuple[ChatMessage, ...]:
    """The chat with the mode's instruction appended to the last user message."""
    last_user = max(i for i, message in enumerate(messages) if message.role == "user")
    target = messages[last_user]
    amended = replace(target, content=f"{target.content}\n\n{instruction(mode, fmt)}")
    return (*messages[:last_user], amended, *messages[last_user + 1 :])
