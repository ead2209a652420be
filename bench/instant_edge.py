"""An edge that answers at once, for measuring the router alone (`sllm bench capacity`).

Behind the router's `Edge` interface, in the router's process: one text delta, then a
summary that the router accepts (STOP, high confidence). No model and no I/O, so what a
request through it costs is the router's own work: this is a measuring instrument, not an
edge, and figures taken with it are labelled so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from router.edge_client import EdgeAnswer, EdgeCall
from sllm.v1 import common_pb2, edge_pb2

TARGET = "instant-edge"
TEXT = "Paris"
# Speeds it reports, so that the router's estimates let it answer within any budget.
_TOKENS_PER_S = 1_000_000.0


def _summary() -> edge_pb2.EdgeSummary:
    return edge_pb2.EdgeSummary(
        text=TEXT,
        final_answer=TEXT,
        answer_found=True,
        prompt_tokens=8,
        completion_tokens=1,
        timings=edge_pb2.EdgeTimings(),
        confidence=common_pb2.Confidence(
            mean_logprob=-0.01,
            min_logprob=-0.01,
            answer_mean_logprob=-0.01,
            min_window_mean_logprob=-0.01,
        ),
        exit_reason=common_pb2.EXIT_REASON_STOP,
        model="instant",
        reasoning_mode=common_pb2.REASONING_MODE_DIRECT,
    )


class InstantEdge:
    target = TARGET
    continues_trace = False

    def __init__(self) -> None:
        # One answer for every call: the router only reads it.
        self._answer = EdgeAnswer(_summary())

    async def generate(
        self, call: EdgeCall, *, timeout_s: float
    ) -> AsyncIterator[str | EdgeAnswer]:
        yield TEXT
        yield self._answer

    async def info(self, *, timeout_s: float = 2.0) -> edge_pb2.EdgeInfo:
        return edge_pb2.EdgeInfo(
            model="instant",
            prefill_tokens_per_s=_TOKENS_PER_S,
            decode_tokens_per_s=_TOKENS_PER_S,
        )

    async def healthy(self, *, timeout_s: float = 1.0) -> bool:
        return True

    async def aclose(self) -> None:
        return None
