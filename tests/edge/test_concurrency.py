"""One generation at a time, a bounded queue, and cancellation that frees the model."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from sllm.v1 import edge_pb2, edge_pb2_grpc
from tests.edge.calls import ask, edge_stub, generate
from tests.fixtures.edge import EdgeWorkerProcess

pytestmark = pytest.mark.slow

LONG = ask(
    "Write a very long story about a dragon.",
    max_tokens=1500,
    early_exit=edge_pb2.EarlyExit(disabled=True),
)


def _running(stub: edge_pb2_grpc.EdgeWorkerStub) -> Iterator[edge_pb2.EdgeGenerateEvent]:
    """A long generation, returned once its first token arrived (so it holds the model)."""
    call = stub.Generate(LONG, timeout=120)
    first = next(call)
    assert first.HasField("delta")
    return call


def _wait_for_queue_depth(stub: edge_pb2_grpc.EdgeWorkerStub, depth: int) -> None:
    deadline = time.monotonic() + 10
    while stub.Info(edge_pb2.EdgeInfoRequest(), timeout=5).queue_depth != depth:
        assert time.monotonic() < deadline, f"queue depth never reached {depth}"
        time.sleep(0.02)


def test_cancelled_call_frees_the_model_for_the_next_request(
    edge_server: EdgeWorkerProcess,
) -> None:
    with edge_stub(edge_server.target) as stub:
        running = _running(stub)
        running.cancel()  # type: ignore[attr-defined]
        after = generate(stub, ask("What is 2 + 3?", max_tokens=8))
    # Had the cancelled generation kept the model, this one would have waited for
    # ~1500 tokens (tens of seconds); the margin covers one token (or one prompt chunk)
    # on a CPU shared with other work.
    assert after.summary.timings.queue_ms < 3000


def test_full_queue_is_resource_exhausted_at_once(
    edge_worker_factory: Callable[..., EdgeWorkerProcess],
) -> None:
    worker = edge_worker_factory("--queue-size", "1")
    with edge_stub(worker.target) as stub:
        running = _running(stub)
        waiting = stub.Generate(ask("What is 2 + 3?", max_tokens=4), timeout=120)
        _wait_for_queue_depth(stub, 1)
        started = time.perf_counter()
        with pytest.raises(grpc.RpcError) as raised:
            generate(stub, ask("What is 2 + 3?", max_tokens=4))
        assert time.perf_counter() - started < 5  # at once, not after the running one
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "busy" in (raised.value.details() or "")
        running.cancel()  # type: ignore[attr-defined]
        # The queued request was not lost: it runs once the model is free.
        events = list(waiting)
        assert events[-1].HasField("summary")
        _wait_for_queue_depth(stub, 0)
