"""The edge worker inside the router's process (`edge_target = "in-process"`).

Same requests and answers as over gRPC, without the network hop: on a 1-token call the
hop costs more than everything the router itself does (docs/benchmarks.md, Router). The
price is isolation: a model that crashes the process takes the router with it, and the
model's thread shares the router's CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import structlog
from prometheus_client import REGISTRY, CollectorRegistry

from edge_worker.engine import QueueFull
from edge_worker.worker import EdgeWorker
from router.edge_client import EdgeAnswer, EdgeCall, EdgeError, answer_stream, edge_request
from sllm.settings import IN_PROCESS
from sllm.v1 import edge_pb2
from sllm.wire import InvalidRequest

log = structlog.get_logger("router.local_edge")
# A generation this far past its deadline is stuck (a token takes milliseconds): the edge
# is reported unhealthy, so queries skip it rather than queue behind it, until it ends.
STUCK_AFTER_S = 1.0


def _failed(code: str, detail: str) -> EdgeError:
    # Worded as the gRPC client words it, so logs and decision records read the same.
    return EdgeError(f"edge {code}: {detail}", code=code)


class LocalEdge:
    def __init__(self, worker: EdgeWorker, *, metrics: CollectorRegistry = REGISTRY) -> None:
        """`metrics`: where the worker's metrics are served (the router's registry)."""
        self.worker = worker
        self.target = IN_PROCESS
        self.continues_trace = False
        self._metrics = metrics
        metrics.register(worker.metrics.registry)

    async def generate(
        self, call: EdgeCall, *, timeout_s: float
    ) -> AsyncIterator[str | EdgeAnswer]:
        timeout_s = max(timeout_s, 0.001)
        events = self.worker.generate(edge_request(call), deadline=time.monotonic() + timeout_s)
        try:
            # The worker stops at its deadline between tokens; a model stuck inside one
            # never gets there, so the wait for it is bounded here too.
            async with asyncio.timeout(timeout_s), aclosing(events):
                async for item in answer_stream(events):
                    yield item
        except TimeoutError as error:
            raise _failed(
                "DEADLINE_EXCEEDED", f"no answer within {timeout_s * 1000:.0f} ms"
            ) from error
        except InvalidRequest as error:
            raise _failed("INVALID_ARGUMENT", str(error)) from error
        except QueueFull as error:
            raise _failed("RESOURCE_EXHAUSTED", str(error)) from error
        except Exception as error:  # a failing generation degrades this answer, not the router
            log.exception("router.local_edge_failed")
            raise _failed("INTERNAL", f"generation failed: {error!r}") from error

    async def info(self, *, timeout_s: float = 2.0) -> edge_pb2.EdgeInfo:
        return self.worker.info()

    async def healthy(self, *, timeout_s: float = 1.0) -> bool:
        return self.worker.engine.overrun_s() < STUCK_AFTER_S

    async def aclose(self) -> None:
        self._metrics.unregister(self.worker.metrics.registry)
        await asyncio.to_thread(self.worker.close)
