"""The router's view of the edge worker: the `Edge` interface, and `EdgeClient`, which
reaches a worker over gRPC (the in-process worker is `router.local_edge.LocalEdge`)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from router.policy import ReasoningMode
from router.query import AnswerFormat
from sllm.chat import ChatMessage
from sllm.settings import TlsClientSettings
from sllm.tls import channel
from sllm.v1 import common_pb2, edge_pb2, edge_pb2_grpc

_ROLES = {
    "system": common_pb2.ROLE_SYSTEM,
    "user": common_pb2.ROLE_USER,
    "assistant": common_pb2.ROLE_ASSISTANT,
}
_MODES = {
    "DIRECT": common_pb2.REASONING_MODE_DIRECT,
    "STEP_BY_STEP": common_pb2.REASONING_MODE_STEP_BY_STEP,
}
_FORMATS = {
    "FREE_TEXT": common_pb2.ANSWER_FORMAT_FREE_TEXT,
    "NUMBER": common_pb2.ANSWER_FORMAT_NUMBER,
    "CHOICE_LETTER": common_pb2.ANSWER_FORMAT_CHOICE_LETTER,
    "YES_NO": common_pb2.ANSWER_FORMAT_YES_NO,
}


class EdgeError(Exception):
    """The edge could not answer (down, overloaded, out of time, or a broken stream)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class EdgeCall:
    messages: list[ChatMessage]
    reasoning_mode: ReasoningMode
    max_tokens: int
    time_budget_ms: int
    answer_format: AnswerFormat
    request_id: str
    # W3C trace context (`traceparent`) of the caller's span: the worker's spans join it.
    trace_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EdgeAnswer:
    """The edge's summary; `summary` keeps every signal for the cascade scorer and the log."""

    summary: edge_pb2.EdgeSummary

    @property
    def text(self) -> str:
        return self.summary.text

    @property
    def collapsed(self) -> bool:
        return self.summary.escalate


class Edge(Protocol):
    """What the router needs of an edge worker, wherever it runs."""

    target: str
    # Whether the edge is another process whose spans join the router's trace: then the
    # edge call is a span while it runs, so that its calls can name it as their parent.
    continues_trace: bool

    def generate(self, call: EdgeCall, *, timeout_s: float) -> AsyncIterator[str | EdgeAnswer]:
        """Yields text deltas, then the `EdgeAnswer`; raises `EdgeError` on any failure."""
        ...

    async def info(self, *, timeout_s: float = 2.0) -> edge_pb2.EdgeInfo: ...

    async def healthy(self, *, timeout_s: float = 1.0) -> bool: ...

    async def aclose(self) -> None: ...


def edge_request(call: EdgeCall) -> edge_pb2.EdgeGenerateRequest:
    return edge_pb2.EdgeGenerateRequest(
        messages=[
            common_pb2.ChatMessage(role=_ROLES[m.role], content=m.content) for m in call.messages
        ],
        reasoning_mode=_MODES[call.reasoning_mode],
        max_tokens=call.max_tokens,
        time_budget_ms=max(1, call.time_budget_ms),
        answer_format=_FORMATS[call.answer_format],
        request_id=call.request_id,
    )


async def answer_stream(
    events: AsyncIterable[edge_pb2.EdgeGenerateEvent],
) -> AsyncIterator[str | EdgeAnswer]:
    """A worker's events as the `Edge` interface yields them: text deltas, then the answer."""
    async for event in events:
        if event.HasField("delta"):
            yield event.delta.text
        else:
            yield EdgeAnswer(event.summary)
            return
    raise EdgeError("the edge ended without a summary", code="INTERNAL")


# A worker that restarts (crashed, redeployed) is reconnected to within about a second
# of listening again: gRPC's default backoff grows to two minutes between attempts.
_RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class EdgeClient:
    def __init__(self, target: str, *, tls: TlsClientSettings | None = None) -> None:
        """`tls`: how to reach a worker that serves TLS (router.edge_tls); None: plain."""
        self.target = target
        self.continues_trace = True
        self._channel = channel(target, tls or TlsClientSettings(), _RECONNECT_OPTIONS)
        self._stub = edge_pb2_grpc.EdgeWorkerStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def generate(
        self, call: EdgeCall, *, timeout_s: float
    ) -> AsyncIterator[str | EdgeAnswer]:
        stream = self._stub.Generate(
            edge_request(call),
            timeout=max(timeout_s, 0.001),
            metadata=tuple(call.trace_headers.items()) or None,
        )
        try:
            async for item in answer_stream(stream):
                yield item
        except grpc.aio.AioRpcError as error:
            raise EdgeError(
                f"edge {error.code().name}: {error.details()}", code=error.code().name
            ) from error
        finally:
            stream.cancel()

    async def info(self, *, timeout_s: float = 2.0) -> edge_pb2.EdgeInfo:
        """Raises `grpc.aio.AioRpcError` when the worker cannot be reached."""
        return await self._stub.Info(edge_pb2.EdgeInfoRequest(), timeout=timeout_s)

    async def healthy(self, *, timeout_s: float = 1.0) -> bool:
        try:
            reply = await self._health.Check(
                health_pb2.HealthCheckRequest(service="sllm.v1.EdgeWorker"), timeout=timeout_s
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def aclose(self) -> None:
        await self._channel.close(grace=None)
