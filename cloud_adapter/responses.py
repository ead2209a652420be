"""What came back from the endpoint, unary or streamed, before it becomes a CloudResult."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from openai.types.chat import ChatCompletion, ChatCompletionChunk


@dataclass(frozen=True)
class Answer:
    """What the endpoint said; token counts are None where it did not say."""

    text: str
    model: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None

    @classmethod
    def of(cls, response: ChatCompletion) -> Answer:
        """Raises on an answer that is not a chat completion (anything but choices)."""
        if not response.choices:
            raise ValueError("the answer has no choices")
        choice, usage = response.choices[0], response.usage
        return cls(
            text=choice.message.content or "",
            model=response.model,
            finish_reason=choice.finish_reason or "",
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
        )


class IncompleteStream(ConnectionError):
    """The stream ended without saying why (no finish reason): it was cut."""


@dataclass
class StreamState:
    """What a stream has delivered so far."""

    parts: list[str] = field(default_factory=list)
    model: str = ""
    finish_reason: str = ""
    deltas: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_at: float | None = None

    def absorb(self, chunk: ChatCompletionChunk) -> str:
        """Records the chunk; returns its text delta."""
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.prompt_tokens = chunk.usage.prompt_tokens
            self.completion_tokens = chunk.usage.completion_tokens
        text = ""
        for choice in chunk.choices[:1]:
            text = choice.delta.content or ""
            self.finish_reason = choice.finish_reason or self.finish_reason
        if text:
            self.parts.append(text)
            self.deltas += 1
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
        return text

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def answer(self) -> Answer:
        return Answer(
            text=self.text,
            model=self.model,
            finish_reason=self.finish_reason,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )
