"""The cloud client: chat completions from any OpenAI-compatible endpoint, within a deadline.

Every call takes an absolute deadline (a `time.monotonic()` value). One that cannot finish
by then is not started; each attempt's HTTP timeout is cut to the time left; retries
(transient failures only) wait only when the next attempt still fits. A circuit breaker
makes calls fail at once, with no I/O, while the endpoint is known to be down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import openai
import structlog
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam
from opentelemetry import trace
from opentelemetry.context import Context

from cloud_adapter import metrics
from cloud_adapter.breaker import BreakerOpen, BreakerState, CircuitBreaker
from cloud_adapter.classify import outcome_label, typed_error
from cloud_adapter.errors import (
    CloudBadRequest,
    CloudDeadlineExceeded,
    CloudError,
    CloudStreamBroken,
    CloudUnavailable,
)
from cloud_adapter.pricing import cost_usd, price_for
from cloud_adapter.responses import Answer, IncompleteStream, StreamState
from cloud_adapter.result import CloudChunk, CloudResult
from cloud_adapter.retrying import is_transient, retrying
from sllm.chat import ChatMessage
from sllm.settings import CloudSettings
from sllm.tracing import trace_headers

T = TypeVar("T")

log = structlog.get_logger("cloud_adapter.client")

_CHAT = "/chat/completions"
# Sent when no key is configured: local servers ignore it; real clouds answer 401.
_NO_KEY = "sk-no-key-configured"


def configured_api_key(settings: CloudSettings) -> str | None:
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    return os.environ.get("OPENAI_API_KEY")


@dataclass
class _Attempts:
    span: trace.Span
    count: int = 0


@dataclass
class _OpenedStream:
    stream: openai.AsyncStream[ChatCompletionChunk]
    state: StreamState
    first_text: str


class CloudClient:
    """One endpoint (settings.base_url), one model, one breaker."""

    def __init__(
        self,
        settings: CloudSettings,
        *,
        breaker_clock: Callable[[], float] = time.monotonic,
        tracer: trace.Tracer | None = None,
    ) -> None:
        """`breaker_clock`: what the breaker's cool-down is timed on (a test's own clock).
        `tracer`: makes a span of each call (sllm/tracing.py); None: no spans."""
        self._settings = settings
        self._tracer = tracer or trace.NoOpTracer()
        self.endpoint = settings.base_url
        self._breaker = CircuitBreaker(
            self.endpoint,
            failure_threshold=settings.breaker_failure_threshold,
            cooldown_s=settings.breaker_cooldown_s,
            clock=breaker_clock,
        )
        timeout = httpx2.Timeout(settings.request_timeout_s, connect=settings.connect_timeout_s)
        self._openai = openai.AsyncOpenAI(
            base_url=settings.base_url,
            api_key=configured_api_key(settings) or _NO_KEY,
            # Retries are ours (tenacity), so that they fit the deadline.
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )

    @property
    def model(self) -> str:
        return self._settings.model

    @property
    def breaker_state(self) -> BreakerState:
        return self._breaker.state

    def estimate_cost(
        self, prompt_tokens: int, completion_tokens: int, *, model: str | None = None
    ) -> float:
        """US dollars for that many tokens of `model` (default: the configured model)."""
        price = price_for(self._settings, model or self._settings.model)
        return cost_usd(price, prompt_tokens, completion_tokens)

    async def aclose(self) -> None:
        await self._openai.close()

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        deadline: float,
        temperature: float = 0.0,
        trace_context: Context | None = None,
    ) -> CloudResult:
        """`trace_context`: the trace this call's span joins (none: a trace of its own,
        when tracing is on)."""
        started = time.monotonic()
        wire = self._wire_messages(messages, max_tokens=max_tokens)
        span = self._span(trace_context, streamed=False)
        headers = trace_headers(span)

        async def attempt(http_timeout: httpx2.Timeout) -> Answer:
            response = await self._openai.post(
                _CHAT,
                cast_to=ChatCompletion,
                body=self._body(wire, max_tokens, temperature, streamed=False),
                options=_options(http_timeout, headers),
            )
            return Answer.of(response)

        try:
            answer, attempts = await self._call(attempt, deadline=deadline, span=span)
            result = self._result(
                answer, messages, started=started, first_token_at=None, attempts=attempts
            )
            _answered(span, result)
            return result
        except CloudError as error:
            self._failed(span, error)
            raise
        finally:
            span.end()

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        deadline: float,
        temperature: float = 0.0,
        trace_context: Context | None = None,
    ) -> AsyncGenerator[CloudChunk, None]:
        """Yields text deltas as they arrive, then one chunk with the whole `result`.

        Failures before the first token are retried like `complete`; after it, the stream
        is not restarted: CloudStreamBroken carries the partial text."""
        started = time.monotonic()
        wire = self._wire_messages(messages, max_tokens=max_tokens)
        span = self._span(trace_context, streamed=True)
        # Closed with the caller's stream, so a caller that leaves mid-stream closes the
        # HTTP stream at once (and the breaker hears of it), not at garbage collection.
        chunks = self._stream(wire, messages, max_tokens, deadline, temperature, started, span)
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield chunk
        except CloudError as error:
            self._failed(span, error)
            raise
        except (GeneratorExit, asyncio.CancelledError):
            span.set_attribute("sllm.cloud.abandoned", True)
            raise
        finally:
            span.end()

    async def _stream(
        self,
        wire: list[ChatCompletionMessageParam],
        messages: Sequence[ChatMessage],
        max_tokens: int,
        deadline: float,
        temperature: float,
        started: float,
        span: trace.Span,
    ) -> AsyncGenerator[CloudChunk, None]:
        headers = trace_headers(span)

        async def attempt(http_timeout: httpx2.Timeout) -> _OpenedStream:
            stream = await self._openai.post(
                _CHAT,
                cast_to=ChatCompletion,
                body=self._body(wire, max_tokens, temperature, streamed=True),
                options=_options(http_timeout, headers),
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )
            state = StreamState()
            try:
                # Read up to the first token inside the attempt, so that a stream that
                # breaks before any text is retried like any other failed attempt.
                while not (first_text := state.absorb(await anext(stream))):
                    pass
            except StopAsyncIteration:
                first_text = ""
                if not state.finish_reason:
                    raise IncompleteStream("the stream ended before any text") from None
            except BaseException:
                await stream.close()
                raise
            return _OpenedStream(stream, state, first_text)

        opened, attempts = await self._call(attempt, deadline=deadline, span=span, open_ended=True)
        state = opened.state
        try:
            async with opened.stream:
                if opened.first_text:
                    yield CloudChunk(text=opened.first_text)
                while True:
                    try:
                        async with asyncio.timeout(deadline - time.monotonic()):
                            chunk = await anext(opened.stream)
                    except StopAsyncIteration:
                        break
                    except Exception as exc:
                        raise self._broken(exc, state, isinstance(exc, TimeoutError)) from exc
                    if text := state.absorb(chunk):
                        yield CloudChunk(text=text)
        except (GeneratorExit, asyncio.CancelledError):
            # The caller left mid-stream: no verdict on the endpoint.
            self._breaker.record_abandoned()
            raise
        if not state.finish_reason:
            raise self._broken(IncompleteStream("no finish reason"), state, False)
        self._breaker.record_success()
        result = self._result(
            state.answer(),
            messages,
            started=started,
            first_token_at=state.first_token_at,
            attempts=attempts,
            streamed_deltas=state.deltas,
        )
        _answered(span, result)
        yield CloudChunk(text="", result=result)

    async def list_models(self, *, deadline: float) -> list[str]:
        """The model names the endpoint offers (GET /models)."""

        async def attempt(http_timeout: httpx2.Timeout) -> list[str]:
            page = await self._openai.models.list(timeout=http_timeout)
            return [model.id for model in page.data]

        models, _ = await self._call(attempt, deadline=deadline, span=trace.INVALID_SPAN)
        return models

    def _wire_messages(
        self, messages: Sequence[ChatMessage], *, max_tokens: int
    ) -> list[ChatCompletionMessageParam]:
        """The messages as the OpenAI API takes them, once the request is known to be sane."""
        if not messages:
            raise CloudBadRequest("no messages to send", endpoint=self.endpoint)
        if max_tokens < 1:
            raise CloudBadRequest(
                f"max_tokens must be >= 1, got {max_tokens}", endpoint=self.endpoint
            )
        return [{"role": m.role, "content": m.content} for m in messages]  # type: ignore[misc]

    def _body(
        self,
        wire: list[ChatCompletionMessageParam],
        max_tokens: int,
        temperature: float,
        *,
        streamed: bool,
    ) -> dict[str, Any]:
        """The request as `chat.completions.create` sends it. Posted as it is: `create`
        first walks its typed parameters to transform them (0.36 ms of CPU a call here,
        a tenth of a cloud-routed request), a no-op for these plain values."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": wire,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": streamed,
        }
        if streamed:
            # Usage in the last chunk, where the endpoint supports it (else estimated).
            body["stream_options"] = {"include_usage": True}
        return body

    async def _call(
        self,
        attempt: Callable[[httpx2.Timeout], Awaitable[T]],
        *,
        deadline: float,
        span: trace.Span,
        open_ended: bool = False,
    ) -> tuple[T, int]:
        """Runs `attempt` through the breaker, retries and deadline; typed errors out.
        `open_ended`: what `attempt` returns is still to be read (a stream): the caller
        gives the breaker its verdict at the end. `span`: the call's, which records each
        attempt as an event."""
        attempts = _Attempts(span)
        try:
            left = deadline - time.monotonic()
            if left < self._settings.min_call_s:
                raise CloudDeadlineExceeded(
                    f"not started: {max(left, 0) * 1000:.0f} ms left before the deadline",
                    endpoint=self.endpoint,
                )
            try:
                # Fail fast: no retry machinery for a call that cannot go out.
                self._breaker.check()
                policy = retrying(
                    self._settings,
                    deadline=deadline,
                    endpoint=self.endpoint,
                    refused=lambda: self._breaker.state == "open",
                )
                value: T = await policy(self._attempt, attempt, deadline, attempts, open_ended)
            except BreakerOpen as exc:
                raise CloudUnavailable(
                    str(exc), endpoint=self.endpoint, cause=exc, breaker_open=True
                ) from exc
            except Exception as exc:
                raise typed_error(
                    exc,
                    endpoint=self.endpoint,
                    model=self.model,
                    attempts=attempts.count,
                    deadline_reached=deadline - time.monotonic() < self._settings.min_call_s,
                ) from exc
        except CloudError as error:
            metrics.CALLS.labels(self.endpoint, outcome_label(error)).inc()
            # While the breaker is open every call fails so: its opening was logged once.
            level = logging.DEBUG if outcome_label(error) == "breaker_open" else logging.WARNING
            log.log(
                level,
                "cloud.call_failed",
                endpoint=self.endpoint,
                error=type(error).__name__,
                reason=str(error),
                attempts=attempts.count,
            )
            raise
        return value, attempts.count

    async def _attempt(
        self,
        attempt: Callable[[httpx2.Timeout], Awaitable[T]],
        deadline: float,
        attempts: _Attempts,
        open_ended: bool,
    ) -> T:
        self._breaker.before_call()
        attempts.count += 1
        attempts.span.add_event("attempt", {"sllm.cloud.attempt": attempts.count})
        metrics.ATTEMPTS.labels(self.endpoint).inc()
        left = deadline - time.monotonic()
        timeout = httpx2.Timeout(
            min(self._settings.request_timeout_s, left),
            connect=min(self._settings.connect_timeout_s, left),
        )
        try:
            # The HTTP timeouts bound each read; this bounds the whole attempt.
            async with asyncio.timeout(left):
                value = await attempt(timeout)
        except openai.APIStatusError as exc:
            if is_transient(exc):
                self._breaker.record_failure()
            else:
                # It answered: the endpoint is up, whatever it thought of the request.
                self._breaker.record_success()
            raise
        except Exception:
            # Nothing, or nonsense (not a chat completion), came back.
            self._breaker.record_failure()
            raise
        except BaseException:
            # Cancelled by the caller: no verdict on the endpoint.
            self._breaker.record_abandoned()
            raise
        # A stream that opened and then breaks after its first tokens (again and again)
        # must count against the endpoint: its verdict waits for the stream's end.
        if not open_ended:
            self._breaker.record_success()
        return value

    def _span(self, parent: Context | None, *, streamed: bool) -> trace.Span:
        return self._tracer.start_span(
            "sllm.cloud",
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes={
                "sllm.cloud.endpoint": self.endpoint,
                "sllm.cloud.model": self.model,
                "sllm.cloud.streamed": streamed,
            },
        )

    def _failed(self, span: trace.Span, error: CloudError) -> None:
        if span.is_recording():
            span.set_status(trace.StatusCode.ERROR, str(error))
            span.set_attributes(
                {
                    "sllm.cloud.error": type(error).__name__,
                    "sllm.cloud.breaker_state": self.breaker_state,
                }
            )

    def _broken(self, exc: BaseException, state: StreamState, deadline_cut: bool) -> CloudError:
        # A stream cut by our own deadline says nothing against the endpoint.
        if deadline_cut:
            self._breaker.record_abandoned()
        else:
            self._breaker.record_failure()
        reason = "deadline reached" if deadline_cut else f"{type(exc).__name__}: {exc}"
        error = CloudStreamBroken(
            f"stream broke after {len(state.text)} characters: {reason}",
            endpoint=self.endpoint,
            cause=exc,
            partial_text=state.text,
        )
        metrics.CALLS.labels(self.endpoint, outcome_label(error)).inc()
        log.warning("cloud.stream_broken", endpoint=self.endpoint, reason=reason)
        return error

    def _result(
        self,
        answer: Answer,
        messages: Sequence[ChatMessage],
        *,
        started: float,
        first_token_at: float | None,
        attempts: int,
        streamed_deltas: int = 0,
    ) -> CloudResult:
        text, model, finish_reason = answer.text, answer.model or self.model, answer.finish_reason
        prompt_tokens, completion_tokens = answer.prompt_tokens, answer.completion_tokens
        estimated = prompt_tokens is None or completion_tokens is None
        if prompt_tokens is None:
            # The usual rule of thumb: ~4 characters a token, ~4 tokens of framing a message.
            prompt_tokens = sum(len(m.content) // 4 + 4 for m in messages)
        if completion_tokens is None:
            completion_tokens = streamed_deltas or len(text) // 4
        now = time.monotonic()
        result = CloudResult(
            text=text,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=self.estimate_cost(prompt_tokens, completion_tokens, model=model),
            latency_ms=(now - started) * 1000,
            ttft_ms=(first_token_at - started) * 1000 if first_token_at is not None else None,
            attempts=attempts,
            finish_reason=finish_reason,
            usage_estimated=estimated,
        )
        metrics.CALLS.labels(self.endpoint, "ok").inc()
        metrics.LATENCY.labels(self.endpoint).observe(now - started)
        if result.ttft_ms is not None:
            metrics.TTFT.labels(self.endpoint).observe(result.ttft_ms / 1000)
        metrics.TOKENS.labels(self.endpoint, "prompt").inc(prompt_tokens)
        metrics.TOKENS.labels(self.endpoint, "completion").inc(completion_tokens)
        metrics.COST.labels(self.endpoint).inc(result.cost_usd)
        log.info(
            "cloud.call",
            endpoint=self.endpoint,
            model=model,
            attempts=attempts,
            latency_ms=round(result.latency_ms, 1),
            ttft_ms=round(result.ttft_ms, 1) if result.ttft_ms is not None else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=result.cost_usd,
            usage_estimated=estimated,
            finish_reason=finish_reason,
        )
        return result


def _options(timeout: httpx2.Timeout, headers: dict[str, str]) -> openai.RequestOptions:
    options: openai.RequestOptions = {"timeout": timeout}
    if headers:
        options["headers"] = headers
    return options


def _answered(span: trace.Span, result: CloudResult) -> None:
    if span.is_recording():
        span.set_attributes(
            {
                "sllm.cloud.attempts": result.attempts,
                "sllm.cloud.retries": result.attempts - 1,
                "sllm.cloud.answer_model": result.model,
                "sllm.cloud.ttft_ms": result.ttft_ms if result.ttft_ms is not None else -1.0,
                "sllm.cloud.prompt_tokens": result.prompt_tokens,
                "sllm.cloud.completion_tokens": result.completion_tokens,
                "sllm.cloud.cost_usd": result.cost_usd,
                "sllm.cloud.finish_reason": result.finish_reason,
            }
        )
