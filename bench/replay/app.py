"""The replay endpoint's HTTP app: OpenAI-compatible chat completions, unary and streamed,
that replay known answers with a cloud model's latency. Only sleeps wait: the event loop
is never blocked."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import structlog
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.replay.book import REPLY_MODELS, Found, ReplayBook, Reply, ReplySource
from bench.replay.latency import CHARS_PER_TOKEN, Latency, estimate_tokens
from bench.replay.wire import ChatRequest, Completion, FinishReason, error_body, usage

log = structlog.get_logger("bench.replay")

SOURCE_HEADER = "x-sllm-replay-source"
QUESTION_HEADER = "x-sllm-replay-question"
# The name to configure (SLLM_CLOUD__MODEL): any name is served, this one is listed first.
SERVED_MODEL = "replay"

# Streamed pieces: a word with the white space after it (the first may be white space).
_PIECE = re.compile(r"\s+|\S+\s*")
_UNKNOWN_QUESTION = (
    "no recorded or gold answer for this question: the replay endpoint knows only the "
    "questions of ../shared/data (start it with --fallback-answer to answer anyway)"
)


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse(
        error_body(message, kind="invalid_request_error", code="invalid_request"), status_code=400
    )


class Replayer:
    def __init__(self, book: ReplayBook, latency: Latency, *, fallback_answer: str | None) -> None:
        self.book = book
        self.latency = latency
        self.fallback_answer = fallback_answer

    async def models(self, _: Request) -> JSONResponse:
        names = [SERVED_MODEL, *REPLY_MODELS.values()]
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "sllm"} for name in names]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(self, request: Request) -> Response:
        try:
            chat = ChatRequest.model_validate_json(await request.body())
        except ValidationError as error:
            return _bad_request(f"not a chat completion request: {_first_problem(error)}")
        question = chat.last_user_text()
        if question is None:
            return _bad_request("no message with role 'user': the question goes in one")
        found = self._find(question)
        if found is None:
            log.warning("replay.unknown_question", question_start=question[:80])
            return JSONResponse(
                error_body(
                    _UNKNOWN_QUESTION, kind="invalid_request_error", code="unknown_question"
                ),
                status_code=404,
            )
        reply = found.reply
        text, finish_reason = _capped(reply.text, chat.token_cap)
        used = usage(sum(estimate_tokens(m.text) for m in chat.messages), estimate_tokens(text))
        log.info(
            "replay.answer",
            source=reply.source.value,
            task=reply.task,
            question_id=reply.question_id,
            match=found.match,
            stream=chat.stream,
            completion_tokens=used["completion_tokens"],
            finish_reason=finish_reason,
        )
        headers = {SOURCE_HEADER: reply.source.value, QUESTION_HEADER: reply.question_id}
        completion = Completion(reply.model)
        pieces = _PIECE.findall(text)
        if chat.stream:
            events = self._events(
                completion, pieces, finish_reason, used if chat.include_usage else None
            )
            return EventSourceResponse(events, headers=headers)
        await asyncio.sleep(self.latency.whole_answer_s(text, pieces[0] if pieces else ""))
        return JSONResponse(completion.whole(text, finish_reason, used), headers=headers)

    def _find(self, question: str) -> Found | None:
        found = self.book.find(question)
        if found is None and self.fallback_answer is not None:
            return Found(Reply(self.fallback_answer, ReplySource.FALLBACK, "", ""), "none")
        return found

    async def _events(
        self,
        completion: Completion,
        pieces: list[str],
        finish_reason: FinishReason,
        used: dict[str, int] | None,
    ) -> AsyncIterator[str]:
        await asyncio.sleep(self.latency.first_token_s())
        for index, piece in enumerate(pieces):
            if index == 0:
                delta = {"role": "assistant", "content": piece}
            else:
                await asyncio.sleep(self.latency.text_s(piece))
                delta = {"content": piece}
            yield json.dumps(completion.chunk(delta, None))
        yield json.dumps(completion.chunk({}, finish_reason))
        if used is not None:
            yield json.dumps(completion.usage_chunk(used))
        yield "[DONE]"


def _capped(text: str, token_cap: int | None) -> tuple[str, FinishReason]:
    """The text cut to `max_tokens` (at ~4 characters a token), as a real model stops."""
    if token_cap is None or estimate_tokens(text) <= token_cap:
        return text, "stop"
    return text[: token_cap * CHARS_PER_TOKEN], "length"


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or "body"
    return f"{where}: {problem['msg']}"


def build_app(
    book: ReplayBook, latency: Latency, *, fallback_answer: str | None = None
) -> Starlette:
    replayer = Replayer(book, latency, fallback_answer=fallback_answer)
    return Starlette(
        routes=[
            Route("/v1/chat/completions", replayer.chat_completions, methods=["POST"]),
            Route("/v1/models", replayer.models, methods=["GET"]),
        ]
    )
