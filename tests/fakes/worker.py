"""The real edge worker (`EdgeWorker` over `EdgeEngine`) around a `ScriptedModel`.

Everything but the model is the production code: request validation, the engine's queue
and model thread, the generation loop, the early-exit rules, the summary message.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from edge_worker.engine import EdgeEngine
from edge_worker.metrics import EdgeMetrics
from edge_worker.speed import Speed
from edge_worker.worker import EdgeWorker
from sllm.settings import EdgeSettings
from sllm.v1 import edge_pb2
from tests.edge.calls import Generated, gathered
from tests.fakes.model import ScriptedModel

# What `Info` reports for a scripted model (no speed is measured).
SCRIPTED_SPEED = Speed(prefill_tokens_per_s=1000.0, decode_tokens_per_s=100.0)


def scripted_worker(model: ScriptedModel, *, queue_size: int = 8, **settings: Any) -> EdgeWorker:
    """A worker serving `model`; `settings`: EdgeSettings fields (early_exit, ...). Its
    deadlines are read on the model's clock."""
    metrics = EdgeMetrics()
    engine = EdgeEngine(model, queue_size=queue_size, metrics=metrics, clock=model.clock)
    return EdgeWorker(engine, EdgeSettings.model_validate(settings), metrics, SCRIPTED_SPEED)


async def collect(
    worker: EdgeWorker, request: edge_pb2.EdgeGenerateRequest, *, deadline: float | None = None
) -> Generated:
    """The deltas and the summary of one Generate call, as a gRPC caller receives them."""
    async with aclosing(worker.generate(request, deadline=deadline)) as events:
        return gathered([event async for event in events])
