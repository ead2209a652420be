"""Calling a real edge worker over gRPC from the tests."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from sllm.v1 import common_pb2, edge_pb2, edge_pb2_grpc


@dataclass
class Generated:
    deltas: list[edge_pb2.TokenDelta]
    summary: edge_pb2.EdgeSummary

    @property
    def exit_reason(self) -> str:
        return common_pb2.ExitReason.Name(self.summary.exit_reason)


@contextmanager
def edge_stub(target: str) -> Iterator[edge_pb2_grpc.EdgeWorkerStub]:
    with grpc.insecure_channel(target) as channel:
        yield edge_pb2_grpc.EdgeWorkerStub(channel)


def ask(question: str, **fields: Any) -> edge_pb2.EdgeGenerateRequest:
    """A request with one user message; `fields` set the other request fields."""
    return edge_pb2.EdgeGenerateRequest(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=question)], **fields
    )


def generate(
    stub: edge_pb2_grpc.EdgeWorkerStub,
    request: edge_pb2.EdgeGenerateRequest,
    timeout: float = 120.0,
) -> Generated:
    return gathered(stub.Generate(request, timeout=timeout))


def gathered(events: Iterable[edge_pb2.EdgeGenerateEvent]) -> Generated:
    """The deltas and the one summary of a Generate call's events, which must end with it."""
    deltas: list[edge_pb2.TokenDelta] = []
    summaries: list[edge_pb2.EdgeSummary] = []
    for event in events:
        assert not summaries, "the summary must be the last event"
        if event.HasField("delta"):
            deltas.append(event.delta)
        else:
            summaries.append(event.summary)
    assert len(summaries) == 1
    return Generated(deltas, summaries[0])
