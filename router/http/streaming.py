"""A routed query as server-sent events in OpenAI's chunk format, ending `data: [DONE]`.

The cascade judges the edge's answer once it is whole, and may then escalate: edge text
is held until it has decided (the edge's answer is short and bounded by its time budget),
so an unmodified OpenAI client never sees text taken back. A client that opts in with
`sllm.stream_resets` gets edge text at once, and a chunk carrying `sllm.reset` when the
router replaces it, before the other tier's text. docs/http.md."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from router.cascade import Event, RouteFailed
from router.http import mapping
from router.http.errors import ErrorBody, ErrorDetail, unanswered
from router.policy import NoRoute
from router.record import RouteResult
from sllm.records import Delta, Reset

DONE = b"data: [DONE]\n\n"


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


class Chunks:
    """The chunks of one response: all carry its id, creation time and model name."""

    def __init__(self, request_id: str, model: str) -> None:
        self._head = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return _sse(self._head | {"choices": [choice]} | extra)

    def text(self, text: str) -> bytes:
        return self.chunk({"content": text})

    def last(self, result: RouteResult, max_tokens: int) -> bytes:
        return self.chunk(
            {},
            mapping.finish_reason(result, max_tokens),
            usage=mapping.usage(result),
            sllm=mapping.decision(result),
        )


def _broken_off(reason: str) -> bytes:
    """The SDK raises an APIError for a chunk that carries `error`."""
    message = (
        f"the answer was replaced after it had been streamed ({reason}); "
        "retry, or set sllm.stream_resets to receive the replacement"
    )
    error = ErrorDetail(message=message, type="server_error", param=None, code="stream_reset")
    return _sse(ErrorBody(error=error).model_dump())


async def _chain(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    yield first
    async for event in rest:
        yield event


async def sse(
    first: Event,
    events: AsyncGenerator[Event, None],
    chunks: Chunks,
    *,
    resets: bool,
    max_tokens: int,
) -> AsyncIterator[bytes]:
    """`first`: the router's first event, awaited before the response began (so a query no
    tier can take is an error status, not a broken stream)."""
    yield chunks.chunk({"role": "assistant", "content": ""})
    held: list[str] = []
    # Text the client has been sent since the last reset.
    sent = False
    async with aclosing(events):
        try:
            async for event in _chain(first, events):
                if isinstance(event, Delta):
                    if event.tier == "EDGE" and not resets:
                        held.append(event.text)
                        continue
                    sent = True
                    yield chunks.text(event.text)
                elif isinstance(event, Reset):
                    held.clear()
                    if sent and not resets:
                        # Only a cloud that broke mid-answer gets here: its text went out.
                        yield _broken_off(event.reason)
                        return
                    if sent:
                        yield chunks.chunk({}, sllm={"reset": {"reason": event.reason}})
                    sent = False
                else:
                    for text in held:
                        yield chunks.text(text)
                    yield chunks.last(event, max_tokens)
        except (NoRoute, RouteFailed) as error:
            yield _sse(unanswered(error).body.model_dump())
            return
    yield DONE
