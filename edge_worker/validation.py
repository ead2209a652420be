"""EdgeGenerateRequest -> PreparedGeneration, or InvalidRequest saying what to fix."""

from __future__ import annotations

import time

from edge_worker.early_exit import ExitRules
from edge_worker.generation import PreparedGeneration
from edge_worker.prompts import ReasoningMode, primer, with_instruction
from edge_worker.protocols import ServedModel
from sllm.answers import AnswerFormat
from sllm.chat import ChatMessage
from sllm.settings import EdgeSettings
from sllm.v1 import common_pb2, edge_pb2
from sllm.wire import InvalidRequest, messages_from_wire

_MODES = {
    # Unspecified: the worker chooses, and DIRECT is the cheap one.
    common_pb2.REASONING_MODE_UNSPECIFIED: ReasoningMode.DIRECT,
    common_pb2.REASONING_MODE_DIRECT: ReasoningMode.DIRECT,
    common_pb2.REASONING_MODE_STEP_BY_STEP: ReasoningMode.STEP_BY_STEP,
}
_FORMATS = {
    common_pb2.ANSWER_FORMAT_UNSPECIFIED: AnswerFormat.FREE_TEXT,
    common_pb2.ANSWER_FORMAT_FREE_TEXT: AnswerFormat.FREE_TEXT,
    common_pb2.ANSWER_FORMAT_NUMBER: AnswerFormat.NUMBER,
    common_pb2.ANSWER_FORMAT_CHOICE_LETTER: AnswerFormat.CHOICE_LETTER,
    common_pb2.ANSWER_FORMAT_YES_NO: AnswerFormat.YES_NO,
}


def _messages(request: edge_pb2.EdgeGenerateRequest) -> tuple[ChatMessage, ...]:
    if not request.messages:
        raise InvalidRequest(
            "messages is empty: send at least one message with role USER", field="messages"
        )
    messages = messages_from_wire(request.messages)
    if not any(m.role == "user" and m.content.strip() for m in messages):
        raise InvalidRequest(
            "no message has role USER and non-blank content: add the question", field="messages"
        )
    return tuple(messages)


def _rules(request: edge_pb2.EdgeGenerateRequest, settings: EdgeSettings) -> ExitRules:
    given, defaults = request.early_exit, settings.early_exit
    rules = ExitRules(
        enabled=not given.disabled,
        settle_min_logprob=given.settle_min_logprob
        if given.HasField("settle_min_logprob")
        else defaults.settle_min_logprob,
        collapse_max_logprob=given.collapse_max_logprob
        if given.HasField("collapse_max_logprob")
        else defaults.collapse_max_logprob,
        collapse_window=given.collapse_window
        if given.HasField("collapse_window")
        else defaults.collapse_window,
        collapse_min_tokens=given.collapse_min_tokens
        if given.HasField("collapse_min_tokens")
        else defaults.collapse_min_tokens,
        collapse_repeat_tokens=given.collapse_repeat_tokens
        if given.HasField("collapse_repeat_tokens")
        else defaults.collapse_repeat_tokens,
    )
    if rules.collapse_window < 1:
        raise InvalidRequest(
            "early_exit.collapse_window is 0: set it to 1 or more (tokens)",
            field="early_exit.collapse_window",
        )
    return rules


def prepare(
    request: edge_pb2.EdgeGenerateRequest,
    model: ServedModel,
    settings: EdgeSettings,
    *,
    grpc_deadline: float | None = None,
) -> PreparedGeneration:
    """Validates the request and renders its prompt. `grpc_deadline` is a monotonic time."""
    received = time.monotonic()
    messages = _messages(request)
    mode = _MODES.get(request.reasoning_mode)
    if mode is None:
        raise InvalidRequest(
            f"reasoning_mode is {request.reasoning_mode}: use REASONING_MODE_DIRECT (1) or "
            "REASONING_MODE_STEP_BY_STEP (2), or leave it unset",
            field="reasoning_mode",
        )
    fmt = _FORMATS.get(request.answer_format)
    if fmt is None:
        raise InvalidRequest(
            f"answer_format is {request.answer_format}: use FREE_TEXT (1), NUMBER (2), "
            "CHOICE_LETTER (3) or YES_NO (4), or leave it unset",
            field="answer_format",
        )
    max_tokens = settings.default_max_tokens
    if request.HasField("max_tokens"):
        if request.max_tokens <= 0:
            raise InvalidRequest(
                f"max_tokens is {request.max_tokens}: send a positive number, or leave it unset "
                f"for the default ({settings.default_max_tokens})",
                field="max_tokens",
            )
        max_tokens = request.max_tokens
    reply_primer = primer(mode, fmt)
    tokens = model.render_prompt(with_instruction(messages, mode, fmt), reply_primer)
    if len(tokens) >= model.n_ctx:
        raise InvalidRequest(
            f"the prompt is {len(tokens)} tokens but the context holds {model.n_ctx}: "
            "shorten the messages",
            field="messages",
        )
    deadlines = [grpc_deadline] if grpc_deadline is not None else []
    if request.time_budget_ms:
        deadlines.append(received + request.time_budget_ms / 1000.0)
    return PreparedGeneration(
        prompt_tokens=tokens,
        primer=reply_primer,
        reasoning_mode=mode,
        answer_format=fmt,
        max_tokens=max_tokens,
        deadline=min(deadlines) if deadlines else None,
        rules=_rules(request, settings),
        request_id=request.request_id,
    )
