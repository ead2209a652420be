"""A scripted edge behind the router's `Edge` interface (router/edge_client.py).

`ScriptedEdge` answers each call at once with the next `EdgeReply` (the last one again
when they run out): text deltas, then a summary with the exit reason and confidence the
reply names; or an `EdgeError`, before or after some deltas. It records every `EdgeCall`
so that a test can see whether, and how, the router asked the edge.

Why a fake: what the router does with an edge answer (accept, escalate, fall back)
depends on the answer's exit reason and confidence, which a real model gives as it
pleases; here they are chosen, and the cascade's every branch is reached on purpose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from router.edge_client import Edge, EdgeAnswer, EdgeCall, EdgeError
from sllm.v1 import common_pb2, edge_pb2

TARGET = "scripted-edge"


@dataclass(frozen=True)
class EdgeReply:
    """One answer of the scripted edge. `fail` ("RESOURCE_EXHAUSTED", "UNAVAILABLE", ...):
    raise an `EdgeError` with that code after the deltas instead of answering."""

    text: str = "Paris"
    final_answer: str | None = "Paris"
    exit_reason: common_pb2.ExitReason.ValueType = common_pb2.EXIT_REASON_STOP
    mean_logprob: float = -0.1
    fail: str | None = None
    deltas: tuple[str, ...] | None = None  # default: the text in one delta

    def summary(self, call: EdgeCall) -> edge_pb2.EdgeSummary:
        pieces = self.pieces()
        return edge_pb2.EdgeSummary(
            text=self.text,
            final_answer=self.final_answer or "",
            answer_found=self.final_answer is not None,
            prompt_tokens=12,
            completion_tokens=len(pieces),
            timings=edge_pb2.EdgeTimings(
                queue_ms=0.0, prefill_ms=1.0, decode_ms=float(len(pieces)), total_ms=2.0
            ),
            confidence=common_pb2.Confidence(
                mean_logprob=self.mean_logprob,
                min_logprob=self.mean_logprob,
                answer_mean_logprob=self.mean_logprob,
                min_window_mean_logprob=self.mean_logprob,
            ),
            exit_reason=self.exit_reason,
            escalate=self.exit_reason == common_pb2.EXIT_REASON_COLLAPSE,
            model="scripted",
            reasoning_mode=(
                common_pb2.REASONING_MODE_STEP_BY_STEP
                if call.reasoning_mode == "STEP_BY_STEP"
                else common_pb2.REASONING_MODE_DIRECT
            ),
            exit_detail="scripted",
        )

    def pieces(self) -> tuple[str, ...]:
        return self.deltas if self.deltas is not None else (self.text,)


@dataclass
class ScriptedEdge:
    """An `Edge` that answers from `replies`; `is_healthy` is what its health check says,
    and `info` reports the speeds given (the router's edge latency estimates start there)."""

    replies: list[EdgeReply] = field(default_factory=lambda: [EdgeReply()])
    is_healthy: bool = True
    prefill_tokens_per_s: float = 1000.0
    decode_tokens_per_s: float = 100.0
    target: str = TARGET
    # As a worker in its own process would: the tracing tests read the headers it got.
    continues_trace: bool = True
    calls: list[EdgeCall] = field(default_factory=list)
    closed: bool = False

    async def generate(
        self, call: EdgeCall, *, timeout_s: float
    ) -> AsyncIterator[str | EdgeAnswer]:
        self.calls.append(call)
        reply = self.replies[min(len(self.calls), len(self.replies)) - 1]
        for piece in reply.pieces():
            yield piece
        if reply.fail is not None:
            raise EdgeError(f"edge {reply.fail}: scripted failure", code=reply.fail)
        yield EdgeAnswer(reply.summary(call))

    async def info(self, *, timeout_s: float = 2.0) -> edge_pb2.EdgeInfo:
        return edge_pb2.EdgeInfo(
            model="scripted",
            prefill_tokens_per_s=self.prefill_tokens_per_s,
            decode_tokens_per_s=self.decode_tokens_per_s,
        )

    async def healthy(self, *, timeout_s: float = 1.0) -> bool:
        return self.is_healthy

    async def aclose(self) -> None:
        self.closed = True


def _is_an_edge(edge: ScriptedEdge) -> Edge:
    """Never called: mypy checks here that the fake has the router's `Edge` interface."""
    return edge
