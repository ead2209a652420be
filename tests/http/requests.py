"""What the HTTP door's tests send and read."""

from __future__ import annotations

from typing import Any

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from tests.router.requests import EASY


def user(text: str = EASY) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


async def complete(client: AsyncOpenAI, **fields: Any) -> Any:
    """`client.chat.completions.create` with sllm-auto, `user()` and 16 tokens unless
    `fields` say otherwise."""
    request: dict[str, Any] = {"model": "sllm-auto", "messages": user(), "max_tokens": 16}
    return await client.chat.completions.create(**(request | fields))


def sllm_field(response: ChatCompletion | ChatCompletionChunk) -> dict[str, Any]:
    """The decision the router adds to OpenAI's objects (an extra field to the SDK)."""
    extra = response.model_extra or {}
    field: dict[str, Any] = extra["sllm"]
    return field
