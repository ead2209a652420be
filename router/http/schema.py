"""The request bodies the HTTP door accepts, as OpenAI's API spells them.

Only wire types are checked here (as protobuf checks them for gRPC); what the values may
be is router/validate.py's to say, for both doors alike."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# The ranges of the RouteRequest fields these become (int32).
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
AnswerFormatName = Literal["FREE_TEXT", "NUMBER", "CHOICE_LETTER", "YES_NO"]


class _Body(BaseModel):
    # Strict: "16" is not a number of tokens. Unknown fields (OpenAI's many options) pass.
    model_config = ConfigDict(strict=True, extra="ignore")


class ContentPart(_Body):
    type: str
    text: str | None = None


class Message(_Body):
    # "developer" is OpenAI's newer name for a system message.
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart]


class StreamOptions(_Body):
    include_usage: bool = False


class SllmOptions(_Body):
    """sllm's own options: the body's `sllm` object, or `x-sllm-*` headers."""

    latency_budget_ms: Int32 | None = None
    cost_ceiling_usd: float | None = None
    local_only: bool | None = None
    answer_format: AnswerFormatName | None = None
    client_request_id: str | None = None
    # Streaming: send edge text at once, and a reset chunk if the router takes it back.
    stream_resets: bool | None = None


class ChatCompletionRequest(_Body):
    model: str
    messages: list[Message]
    max_tokens: Int32 | None = None
    max_completion_tokens: Int32 | None = None
    # Accepted for compatibility; not applied (docs/http.md).
    temperature: float | None = Field(default=None, ge=0, le=2)
    stop: str | list[str] | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # The tenant: budgets and statistics are kept per tenant.
    user: str | None = None
    sllm: SllmOptions = SllmOptions()


class FeedbackBody(_Body):
    # The response's `id` (also its x-sllm-request-id header), as gRPC's Feedback names it.
    request_id: str
    score: float
    source: str = ""
