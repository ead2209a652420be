"""The production edge worker around a scripted model that takes real time per token.

`ScriptedModel` (tests/fakes/model.py) moves a fake clock; overload, cancellation and
hangs are matters of real time, so here every decode step sleeps `token_s` and the
worker's deadlines are read on the real clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edge_worker.engine import EdgeEngine
from edge_worker.metrics import EdgeMetrics
from edge_worker.worker import EdgeWorker
from sllm.settings import EdgeSettings
from tests.fakes.model import ScriptedModel
from tests.fakes.worker import SCRIPTED_SPEED


@dataclass
class SlowModel(ScriptedModel):
    token_s: float = 0.0

    def feed(self, token: int) -> None:
        # Sleeping releases the GIL, as a real decode does.
        time.sleep(self.token_s)
        super().feed(token)


def real_time_worker(model: ScriptedModel, *, queue_size: int = 4) -> EdgeWorker:
    metrics = EdgeMetrics()
    engine = EdgeEngine(model, queue_size=queue_size, metrics=metrics)
    return EdgeWorker(engine, EdgeSettings(), metrics, SCRIPTED_SPEED)
