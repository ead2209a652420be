"""The gRPC servicer: translates messages to plain objects and back; the engine does the work."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import structlog

from edge_worker.early_exit import ExitReason
from edge_worker.engine import EdgeEngine, Finished, QueueFull
from edge_worker.generation import Delta
from edge_worker.metrics import EdgeMetrics
from edge_worker.prompts import ReasoningMode
from edge_worker.speed import Speed
from edge_worker.validation import prepare
from edge_worker.wire import Undecodable, lenient_deserializer
from sllm.settings import EdgeSettings
from sllm.v1 import common_pb2, edge_pb2
from sllm.wire import InvalidRequest

SERVICE_NAME = edge_pb2.DESCRIPTOR.services_by_name["EdgeWorker"].full_name

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
    result, confidence = finished.result, finished.result.confidence
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
            confidence=common_pb2.Confidence(
                mean_logprob=confidence.mean_logprob,
                min_logprob=confidence.min_logprob,
                mean_entropy=confidence.mean_entropy,
                max_entropy=confidence.max_entropy,
                answer_mean_logprob=confidence.answer_mean_logprob,
                min_window_mean_logprob=confidence.min_window_mean_logprob,
                score=confidence.score,
            ),
            exit_reason=_EXIT_REASONS[result.exit_reason],
            escalate=result.exit_reason is ExitReason.COLLAPSE,
            model=model,
            reasoning_mode=_MODES[mode],
            exit_detail=result.exit_detail,
        )
    )


class EdgeWorkerServicer:
    def __init__(
        self, engine: EdgeEngine, settings: EdgeSettings, metrics: EdgeMetrics, speed: Speed
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._metrics = metrics
        self._speed = speed

    async def Generate(
        self,
        request: edge_pb2.EdgeGenerateRequest | Undecodable,
        context: grpc.aio.ServicerContext[edge_pb2.EdgeGenerateRequest, edge_pb2.EdgeGenerateEvent],
    ) -> AsyncIterator[edge_pb2.EdgeGenerateEvent]:
        structlog.contextvars.clear_contextvars()
        if isinstance(request, Undecodable):
            await self._reject(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid", request.reason)
            return
        structlog.contextvars.bind_contextvars(request_id=request.request_id or None)
        remaining = context.time_remaining()
        try:
            job = prepare(
                request, self._engine.model, self._settings,
                grpc_deadline=None if remaining is None else time.monotonic() + remaining,
            )
        except InvalidRequest as error:
            await self._reject(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid", str(error))
            return
        outcome = "cancelled"
        started = time.perf_counter()
        try:
            async for event in self._engine.generate(job):
                if isinstance(event, Delta):
                    yield _delta_event(event)
                    continue
                outcome = "ok"
                log.info(
                    "edge.generated",
                    exit_reason=event.result.exit_reason.value,
                    exit_detail=event.result.exit_detail,
                    reasoning_mode=job.reasoning_mode.value,
                    answer_format=job.answer_format.value,
                    answer_found=event.result.final_answer is not None,
                    prompt_tokens=event.result.prompt_tokens,
                    completion_tokens=event.result.completion_tokens,
                    confidence_score=round(event.result.confidence.score, 4),
                    queue_ms=round(event.queue_ms, 1),
                    total_ms=round(event.total_ms, 1),
                )
                yield _summary_event(event, self._engine.model.name, job.reasoning_mode)
        except QueueFull as error:
            outcome = "rejected"
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        except Exception as error:  # a failing generation degrades this call, not the worker
            outcome = "error"
            log.exception("edge.generate_failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"generation failed: {error!r}")
        finally:
            self._metrics.requests.labels(outcome).inc()
            self._metrics.generation_seconds.observe(time.perf_counter() - started)

    async def _reject(
        self,
        context: grpc.aio.ServicerContext[edge_pb2.EdgeGenerateRequest, edge_pb2.EdgeGenerateEvent],
        code: grpc.StatusCode,
        outcome: str,
        message: str,
    ) -> None:
        self._metrics.requests.labels(outcome).inc()
        log.info("edge.rejected", code=code.name, reason=message)
        await context.abort(code, message)

    async def Info(
        self,
        request: edge_pb2.EdgeInfoRequest,
        context: grpc.aio.ServicerContext[edge_pb2.EdgeInfoRequest, edge_pb2.EdgeInfo],
    ) -> edge_pb2.EdgeInfo:
        model = self._engine.model
        return edge_pb2.EdgeInfo(
            model=model.name,
            model_path=str(model.path),
            context_size=model.n_ctx,
            prefill_tokens_per_s=self._speed.prefill_tokens_per_s,
            decode_tokens_per_s=self._speed.decode_tokens_per_s,
            queue_capacity=self._engine.queue_size,
            queue_depth=self._engine.queue_depth,
        )


def add_to_server(servicer: EdgeWorkerServicer, server: grpc.aio.Server) -> None:
    """Like the generated `add_EdgeWorkerServicer_to_server`, but Generate's request
    deserializer reports bad bytes (e.g. invalid UTF-8) as INVALID_ARGUMENT."""
    handlers = {
        "Generate": grpc.unary_stream_rpc_method_handler(
            servicer.Generate,
            request_deserializer=lenient_deserializer(edge_pb2.EdgeGenerateRequest),
            response_serializer=edge_pb2.EdgeGenerateEvent.SerializeToString,
        ),
        "Info": grpc.unary_unary_rpc_method_handler(
            servicer.Info,
            request_deserializer=edge_pb2.EdgeInfoRequest.FromString,
            response_serializer=edge_pb2.EdgeInfo.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
