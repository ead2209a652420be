"""The OpenAI chat-completions wire format: the request the endpoint accepts, and the
completion, chunk and error bodies it answers with."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str = ""


class WireMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[_ContentPart] | None = None

    @property
    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(part.text for part in self.content if part.type == "text")


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = ""
    messages: list[WireMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: _StreamOptions | None = None

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def last_user_text(self) -> str | None:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return None


FinishReason = Literal["stop", "length"]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class Completion:
    """One answer's bodies: the unary completion, or the chunks of its stream."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-replay-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model

    def _head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def whole(self, text: str, finish_reason: FinishReason, used: dict[str, int]) -> dict[str, Any]:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
            "logprobs": None,
        }
        return self._head("chat.completion") | {"choices": [choice], "usage": used}

    def chunk(self, delta: dict[str, str], finish_reason: FinishReason | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return self._head("chat.completion.chunk") | {"choices": [choice]}

    def usage_chunk(self, used: dict[str, int]) -> dict[str, Any]:
        """The last chunk when the request asked for `stream_options.include_usage`."""
        return self._head("chat.completion.chunk") | {"choices": [], "usage": used}


def error_body(message: str, *, kind: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
