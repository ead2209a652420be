"""The edge worker as a plain async object, API messages in and out.

The gRPC servicer serves it over the network; a router that runs the edge in its own
process (`edge_target = "in-process"`) calls it directly and saves a network hop.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from importlib import metadata

import structlog

from edge_worker.early_exit import ExitReason
from edge_worker.engine import EdgeEngine, Finished, QueueFull
from edge_worker.generation import Delta, PreparedGeneration
from edge_worker.metrics import EdgeMetrics
from edge_worker.model import EdgeModel
from edge_worker.native import system_info
from edge_worker.portability import this_machine_choice
from edge_worker.prompts import ReasoningMode
from edge_worker.protocols import ServedModel
from edge_worker.speed import Speed, measure_speed
from edge_worker.templates import TemplateSource
from edge_worker.validation import prepare
from sllm.models import bundled_model_path
from sllm.settings import EdgeSettings
from sllm.v1 import common_pb2, edge_pb2
from sllm.wire import InvalidRequest

log = structlog.get_logger(__name__)

_EXIT_REASONS = {
    ExitReason.SETTLED: common_pb2.EXIT_REASON_SETTLED,
    ExitReason.COLLAPSE: common_pb2.EXIT_REASON_COLLAPSE,
    ExitReason.BUDGET: common_pb2.EXIT_REASON_BUDGET,
    ExitReason.LENGTH: common_pb2.EXIT_REASON_LENGTH,
    ExitReason.STOP: common_pb2.EXIT_REASON_STOP,
}
_MODES = {
    ReasoningMode.DIRECT: common_pb2.REASONING_MODE_DIRECT,
    ReasoningMode.STEP_BY_STEP: common_pb2.REASONING_MODE_STEP_BY_STEP,
}


def _delta_event(delta: Delta) -> edge_pb2.EdgeGenerateEvent:
    return edge_pb2.EdgeGenerateEvent(
        delta=edge_pb2.TokenDelta(
            text=delta.text, logprob=delta.logprob, entropy=delta.entropy, index=delta.index
        )
    )


def _summary_event(
    finished: Finished, model: str, mode: ReasoningMode
) -> edge_pb2.EdgeGenerateEvent:
    result = finished.result
    return edge_pb2.EdgeGenerateEvent(
        summary=edge_pb2.EdgeSummary(
            text=result.text,
            final_answer=result.final_answer or "",
            answer_found=result.final_answer is not None,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            timings=edge_pb2.EdgeTimings(
                queue_ms=finished.queue_ms,
                prefill_ms=result.prefill_ms,
                decode_ms=result.decode_ms,
                total_ms=finished.total_ms,
            ),
            # ConfidenceSummary's fields are the message's, by name.
            confidence=common_pb2.Confidence(**dataclasses.asdict(result.confidence)),
            exit_reason=_EXIT_REASONS[result.exit_reason],
            escalate=result.exit_reason is ExitReason.COLLAPSE,
            model=model,
            reasoning_mode=_MODES[mode],
            exit_detail=result.exit_detail,
        )
    )


class EdgeWorker:
    def __init__(
        self, engine: EdgeEngine, settings: EdgeSettings, metrics: EdgeMetrics, speed: Speed
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = metrics
        self.speed = speed

    @property
    def model(self) -> ServedModel:
        return self.engine.model

    async def generate(
        self, request: edge_pb2.EdgeGenerateRequest, *, deadline: float | None
    ) -> AsyncGenerator[edge_pb2.EdgeGenerateEvent, None]:
        """Token deltas, then the summary. `deadline` is a `time.monotonic()` value (the
        caller's), on top of the request's own time budget.

        Raises `InvalidRequest` before any event for a request to fix, `QueueFull` when
        every slot is taken; closing the iterator stops the generation within one token."""
        try:
            job = prepare(request, self.model, self.settings, grpc_deadline=deadline)
        except InvalidRequest as error:
            self.rejected(str(error))
            raise
        outcome = "cancelled"
        started = time.perf_counter()
        try:
            async with aclosing(self.engine.generate(job)) as events:
                async for event in events:
                    if isinstance(event, Delta):
                        yield _delta_event(event)
                        continue
                    outcome = "ok"
                    self._log(event, job)
                    yield _summary_event(event, self.model.name, job.reasoning_mode)
        except QueueFull:
            outcome = "rejected"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            self.metrics.requests.labels(outcome).inc()
            self.metrics.generation_seconds.observe(time.perf_counter() - started)

    def rejected(self, reason: str) -> None:
        """Counts and logs a request rejected as invalid (here, or before it got here)."""
        self.metrics.requests.labels("invalid").inc()
        log.info("edge.rejected", code="INVALID_ARGUMENT", reason=reason)

    def _log(self, finished: Finished, job: PreparedGeneration) -> None:
        result = finished.result
        log.info(
            "edge.generated",
            exit_reason=result.exit_reason.value,
            exit_detail=result.exit_detail,
            reasoning_mode=job.reasoning_mode.value,
            answer_format=job.answer_format.value,
            answer_found=result.final_answer is not None,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            confidence_score=round(result.confidence.score, 4),
            queue_ms=round(finished.queue_ms, 1),
            total_ms=round(finished.total_ms, 1),
        )

    def info(self) -> edge_pb2.EdgeInfo:
        return edge_pb2.EdgeInfo(
            model=self.model.name,
            model_path=str(self.model.path),
            context_size=self.model.n_ctx,
            prefill_tokens_per_s=self.speed.prefill_tokens_per_s,
            decode_tokens_per_s=self.speed.decode_tokens_per_s,
            queue_capacity=self.engine.queue_size,
            queue_depth=self.engine.queue_depth,
        )

    def close(self) -> None:
        self.engine.close()  # waits for the running generation: the model is free after it
        self.model.close()


def open_model(settings: EdgeSettings) -> EdgeModel:
    """The model the settings name (ModelLoadError if it cannot be loaded); blocking. The
    worker and the engine probe (edge_worker/probe.py) load it the same way."""
    extra_buffers = this_machine_choice(settings.extra_buffers)
    model = EdgeModel(
        settings.model_path or bundled_model_path(),
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_threads_batch=settings.n_threads_batch,
        extra_buffers=extra_buffers.enabled,
        chat_template=settings.chat_template,
    )
    log.info(
        "edge.engine",
        llama_cpp_version=metadata.version("llama-cpp-python"),
        extra_buffers=extra_buffers.enabled,
        extra_buffers_reason=extra_buffers.reason,
        system_info=system_info(),
        model=model.name,
        chat_template=model.template.name,
        chat_template_source=model.template.source.value,
    )
    if model.template.source is TemplateSource.LAST_RESORT:
        log.warning(
            "edge.chat_template_guessed",
            model=model.name,
            model_path=str(model.path),
            chat_template=model.template.name,
            advice="set edge.chat_template to the model's template (a built-in name or a "
            "Jinja file): a model answers worse in a format it was not trained on",
        )
    return model


def load_worker(settings: EdgeSettings) -> EdgeWorker:
    """Loads the model (ModelLoadError if it cannot) and measures its speed; blocking."""
    model = open_model(settings)
    metrics = EdgeMetrics()
    engine = EdgeEngine(model, queue_size=settings.queue_size, metrics=metrics)
    return EdgeWorker(engine, settings, metrics, measure_speed(model))
