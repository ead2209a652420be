"""bench/tracing_cost.py's in-process comparison: the spans a request records and the
baseline made through the SDK's tracer are the same spans (names, kinds, tree, attributes),
so their CPU compares like with like."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.tracing_cost import _recorded, _sdk_spans, measure_span_cpu
from sllm.tracing import Tracing


def _shape(spans: tuple[ReadableSpan, ...]) -> list[tuple[str, str, str, int]]:
    names = {span.context.span_id: span.name for span in spans}
    return sorted(
        (
            span.name,
            span.kind.name,
            names.get(span.parent.span_id, "") if span.parent else "",
            len(span.attributes or {}),
        )
        for span in spans
    )


def test_the_recorded_spans_and_the_sdk_baseline_are_the_same_spans() -> None:
    shapes = []
    for make in (_recorded, _sdk_spans):
        exporter = InMemorySpanExporter()
        make(Tracing.to(exporter, service="test", batch=False))
        spans = exporter.get_finished_spans()
        assert len({span.context.trace_id for span in spans}) == 1
        shapes.append(_shape(spans))
    assert shapes[0] == shapes[1]
    assert len(shapes[0]) == 6
    # Every step inside the route span, the edge's phases inside the edge call.
    parents = {name: parent for name, _, parent, _ in shapes[0]}
    assert parents["sllm.route"] == ""
    assert parents["sllm.edge.decode"] == "sllm.edge"
    assert parents["sllm.decide"] == "sllm.route"


def test_the_span_cpu_figures_are_per_request_and_named() -> None:
    figures = measure_span_cpu(blocks=1, per_block=5).figures()
    assert set(figures) == {
        "tracing_spans_cpu_ms",
        "tracing_spans_sdk_cpu_ms",
        "tracing_spans_over_sdk",
        "tracing_encode_cpu_ms",
    }
    assert all(value > 0 for value in figures.values())
