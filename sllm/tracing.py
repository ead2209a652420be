"""OpenTelemetry tracing, off by default (docs/observability.md).

Each process holds one `Tracing`: a tracer, and what the gRPC servers need to continue a
caller's trace. Off, its tracer is OpenTelemetry's no-op one, so the code that makes
spans runs unchanged at a cost of microseconds. On (`observability.otlp_endpoint`), spans
go out over OTLP/HTTP in batches from a background thread, sampled at
`observability.sampling_ratio` unless the caller's `traceparent` already decided.

No global provider is installed: a process may hold several routers (tests do), each
with its own exporter.

A request's own steps go through a `Recorder` rather than the SDK's mutable spans: their
ids are chosen when they start and the finished span is made once the request is over, for
a few microseconds where starting and ending an SDK span takes 40-60 (docs/observability.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue
from structlog.typing import EventDict, WrappedLogger

from sllm.settings import ObservabilitySettings

# The instrumentation scope of sllm's own spans.
SCOPE = "sllm"
_VERSION = metadata.version("sllm-router")


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SCOPE = InstrumentationScope(SCOPE, _VERSION)


@dataclass(frozen=True, slots=True)
class Recorder:
    """Finished spans made in one go, with the sampling, ids, resource and processor of the
    process's tracer: for spans whose whole life is known when they are made."""

    sampler: Sampler
    ids: IdGenerator
    resource: Resource
    processor: SpanProcessor
    scope: InstrumentationScope = _SCOPE

    def sample(self, caller: Context | None, name: str, kind: SpanKind) -> SpanContext | None:
        """A new span's ids under the caller's span (a new trace without one), or None
        when it is not to be recorded (the sampler's, or the caller's, decision)."""
        parent = caller_span(caller)
        trace_id = parent.trace_id if parent is not None else self.ids.generate_trace_id()
        decision = self.sampler.should_sample(caller, trace_id, name, kind)
        if decision.decision is not Decision.RECORD_AND_SAMPLE:
            return None
        return SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=_SAMPLED,
            trace_state=decision.trace_state,
        )

    def child(self, parent: SpanContext) -> SpanContext:
        """A span's ids inside `parent`'s trace, recorded as it is."""
        return SpanContext(
            parent.trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=parent.trace_flags,
            trace_state=parent.trace_state,
        )

    def record(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        *,
        kind: SpanKind,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, AttributeValue],
        error: str = "",
    ) -> None:
        self.processor.on_end(
            ReadableSpan(
                name,
                context,
                parent,
                self.resource,
                attributes,
                kind=kind,
                status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
                start_time=start_ns,
                end_time=end_ns,
                instrumentation_scope=self.scope,
            )
        )


@dataclass(frozen=True, slots=True)
class Tracing:
    """`tracer` makes spans; `provider` and `recorder` are None when tracing is off."""

    tracer: trace.Tracer
    provider: TracerProvider | None = None
    recorder: Recorder | None = None

    @classmethod
    def off(cls) -> Tracing:
        return cls(trace.NoOpTracer())

    @classmethod
    def to(
        cls,
        exporter: SpanExporter,
        *,
        service: str,
        sampling_ratio: float = 1.0,
        batch: bool = True,
    ) -> Tracing:
        """Spans of `service` go to `exporter`. `batch=False`: each span is exported as it
        ends, on the caller's thread (a test's in-memory exporter, read at once)."""
        # Every trace recorded: no ratio to compute per request.
        root = ALWAYS_ON if sampling_ratio >= 1.0 else TraceIdRatioBased(sampling_ratio)
        sampler, ids = ParentBased(root), RandomIdGenerator()
        resource = Resource.create({"service.name": service, "service.version": _VERSION})
        provider = TracerProvider(sampler=sampler, resource=resource, id_generator=ids)
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        recorder = Recorder(sampler, ids, resource, processor)
        return cls(provider.get_tracer(SCOPE, _VERSION), provider, recorder)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def grpc_server_interceptors(self) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
        """Continues the caller's trace (its `traceparent` metadata) with a server span per
        RPC; none when tracing is off, so an untraced router pays nothing for it."""
        if self.provider is None:
            return []
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        # The instrumentation ships no type hints.
        interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider
        )
        return [interceptor]

    def shutdown(self) -> None:
        """Exports what is still queued, then stops (at the process's end)."""
        if self.provider is not None:
            self.provider.shutdown()


def start_tracing(settings: ObservabilitySettings, *, service: str) -> Tracing:
    """The process's tracing as its settings ask: off without an OTLP endpoint."""
    if settings.otlp_endpoint is None:
        return Tracing.off()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(
        endpoint=settings.otlp_endpoint,
        headers=dict(settings.otlp_headers),
        timeout=settings.otlp_timeout_s,
    )
    return Tracing.to(exporter, service=service, sampling_ratio=settings.sampling_ratio)


def caller_context(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> Context:
    """The trace context a caller sent (W3C `traceparent`/`tracestate` headers or gRPC
    metadata); an empty context when it sent none."""
    carrier = dict(headers) if not isinstance(headers, Mapping) else headers
    return propagate.extract(carrier)


def caller_span(caller: Context | None) -> SpanContext | None:
    """The span a caller's context names; None when it names none (a new trace)."""
    span_context = trace.get_current_span(caller).get_span_context()
    return span_context if span_context.is_valid else None


def current_context() -> Context:
    return otel_context.get_current()


def trace_headers(span: trace.Span) -> dict[str, str]:
    """The W3C headers that make a callee's spans children of `span`; none when `span` is
    not recorded (tracing off or not sampled), so untraced calls carry nothing."""
    if not span.get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def _recorded(span_context: SpanContext) -> bool:
    # An unsampled trace is nowhere to be found: naming it would send people looking.
    return span_context.is_valid and span_context.trace_flags.sampled


def trace_id(span_context: SpanContext) -> str:
    """The trace id in the 32 hex digits tools show; empty when it is not recorded."""
    return trace.format_trace_id(span_context.trace_id) if _recorded(span_context) else ""


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: a line logged inside a span names its trace and span, so logs
    and traces join (a line that already names its trace keeps it)."""
    if "trace_id" not in event_dict:
        span_context = trace.get_current_span().get_span_context()
        if _recorded(span_context):
            event_dict["trace_id"] = trace.format_trace_id(span_context.trace_id)
            event_dict["span_id"] = trace.format_span_id(span_context.span_id)
    return event_dict
