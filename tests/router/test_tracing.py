"""Tracing (sllm/tracing.py, router/spans.py): one trace per request, its span tree, the
caller's `traceparent` honoured over gRPC and HTTP, and the trace id on the decision
record and the log lines.

The spans go to the OpenTelemetry SDK's in-memory exporter (exported as each ends), read
once the request's spans are made: after its answer has gone (router/spans.py). The edge
is scripted (tests/fakes/edge.py) because the cascade's branch must be forced; the cloud
is the real stand-in behind the fault proxy, which records the headers it was sent and
fails the first attempt where a retry is wanted. A real OTLP/HTTP receiver is in
test_tracing_export.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

import grpc
import httpx2
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sllm.tracing import Tracing
from tests.cloud.fault_proxy import Status, proxying
from tests.fakes.edge import EdgeReply, ScriptedEdge
from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.router.requests import ask, route_name

# A caller's span: trace 0af7651916cd43dd8448eb211c80319c, span b7ad6b7169203331, sampled.
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
# The spans of a request the edge answered.
EDGE_ANSWERED = {
    "sllm.route",
    "sllm.decide",
    "sllm.edge",
    "sllm.edge.prefill",
    "sllm.edge.decode",
    "sllm.outcome_log",
}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def tracing(exporter: InMemorySpanExporter, **options: float) -> Tracing:
    return Tracing.to(exporter, service="sllm-router", batch=False, **options)


async def finished(exporter: InMemorySpanExporter, requests: int = 1) -> list[ReadableSpan]:
    """The spans, once the route spans of `requests` requests are among them: a request's
    steps become spans after its answer has gone, on the router's event loop."""
    deadline = time.monotonic() + 10.0
    while True:
        spans = list(exporter.get_finished_spans())
        if sum(span.name == "sllm.route" for span in spans) >= requests:
            return spans
        assert time.monotonic() < deadline, [span.name for span in spans]
        await asyncio.sleep(0.01)


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [span.name for span in spans]
    return named


def parent_of(span: ReadableSpan) -> str:
    assert span.parent is not None, span.name
    return f"{span.parent.span_id:016x}"


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def trace_of(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


async def test_a_cascaded_request_is_one_trace_edge_then_cloud_under_the_callers_span(
    router_factory: RouterFactory,
    standin_server: StandInServer,
    exporter: InMemorySpanExporter,
) -> None:
    edge = ScriptedEdge()
    async with proxying(standin_server.base_url) as proxy:
        # The first attempt gets a 503: the cloud span must show the retry.
        proxy.inject(Status(503))
        cloud = standin_server.settings(
            base_url=proxy.base_url, backoff_initial_s=0.01, backoff_max_s=0.01
        )
        router = await router_factory(
            fake_edge=edge, cloud=cloud, pre=0.0, cascade=1.0, tracing=tracing(exporter)
        )
        response = await router.stub.Generate(
            ask(max_tokens=4), metadata=(("traceparent", TRACEPARENT),)
        )
    assert route_name(response) == "EDGE_THEN_CLOUD"
    spans = by_name(await finished(exporter))
    assert set(spans) == EDGE_ANSWERED | {"sllm.cloud"}
    assert {trace_of(span) for span in spans.values()} == {CALLER_TRACE}
    # The tree: the caller's span > the request (the router's server span) > its steps.
    route = spans["sllm.route"]
    assert route.kind == SpanKind.SERVER and parent_of(route) == CALLER_SPAN
    for step in ("sllm.decide", "sllm.edge", "sllm.cloud", "sllm.outcome_log"):
        assert parent_of(spans[step]) == span_id(route), step
    for phase in ("prefill", "decode"):
        assert parent_of(spans[f"sllm.edge.{phase}"]) == span_id(spans["sllm.edge"])
    # In time order: decide, edge, cloud, outcome log.
    order = ["sllm.decide", "sllm.edge", "sllm.cloud", "sllm.outcome_log"]
    starts = [spans[name].start_time or 0 for name in order]
    assert starts == sorted(starts)

    attributes = route.attributes or {}
    assert attributes["sllm.route"] == "EDGE_THEN_CLOUD"
    assert attributes["sllm.request_id"] == response.request_id
    assert attributes["sllm.reason"] == response.decision.reason
    edge_span = spans["sllm.edge"].attributes or {}
    assert edge_span["sllm.edge.exit_reason"] == "STOP"
    assert edge_span["sllm.edge.completion_tokens"] == 1
    assert edge_span["sllm.edge.prompt_tokens"] == 12
    assert edge_span["sllm.edge.queue_ms"] == 0.0
    # The scripted edge's confidence: each token at log-probability -0.1.
    assert edge_span["sllm.edge.mean_logprob"] == pytest.approx(-0.1)
    assert "sllm.edge.confidence" in edge_span
    # The worker's 1 ms of prefill (scripted) is the prefill span's length.
    prefill = spans["sllm.edge.prefill"]
    assert (prefill.end_time or 0) - (prefill.start_time or 0) == 1_000_000
    cloud_span = spans["sllm.cloud"]
    assert cloud_span.kind == SpanKind.CLIENT
    cloud_attributes = cloud_span.attributes or {}
    assert (cloud_attributes["sllm.cloud.attempts"], cloud_attributes["sllm.cloud.retries"]) == (
        2,
        1,
    )
    assert [event.name for event in cloud_span.events] == ["attempt", "attempt"]
    assert spans["sllm.decide"].attributes["sllm.plan.first_tier"] == "EDGE"  # type: ignore[index]

    # The trace reaches both tiers: the edge call carried the edge span's context, each
    # cloud attempt the cloud span's.
    assert edge.calls[0].trace_headers["traceparent"] == (
        f"00-{CALLER_TRACE}-{span_id(spans['sllm.edge'])}-01"
    )
    sent = [
        head.decode("latin-1").lower()
        for head in proxy.heads
        if b"/chat/completions" in head.split(b"\r\n")[0]
    ]
    assert len(sent) == 2
    assert all(f"traceparent: 00-{CALLER_TRACE}-{span_id(cloud_span)}-01" in h for h in sent)
    # The decision record names the trace.
    assert response.decision.trace_id == CALLER_TRACE


async def test_an_edge_in_the_routers_process_is_a_span_made_after_the_answer(
    router_factory: RouterFactory, exporter: InMemorySpanExporter
) -> None:
    # An edge that no other process continues (the in-process worker) is sent no trace
    # context: its span, like the decision's, is made once the answer has gone.
    edge = ScriptedEdge(continues_trace=False)
    router = await router_factory(fake_edge=edge, cloud=closed_cloud(), tracing=tracing(exporter))
    response = await router.stub.Generate(ask(), metadata=(("traceparent", TRACEPARENT),))
    assert route_name(response) == "EDGE"
    assert dict(edge.calls[0].trace_headers) == {}
    spans = by_name(await finished(exporter))
    assert set(spans) == EDGE_ANSWERED
    route, edge_span = spans["sllm.route"], spans["sllm.edge"]
    assert parent_of(edge_span) == span_id(route)
    assert edge_span.kind == SpanKind.CLIENT
    assert (edge_span.attributes or {})["sllm.edge.exit_reason"] == "STOP"
    for phase in ("prefill", "decode"):
        assert parent_of(spans[f"sllm.edge.{phase}"]) == span_id(edge_span)
    # Each step lies inside the request's span, in the order it ran.
    steps = [spans[name] for name in ("sllm.decide", "sllm.edge", "sllm.outcome_log")]
    assert all(
        (route.start_time or 0) <= (step.start_time or 0) <= (step.end_time or 0) for step in steps
    )
    assert (steps[-1].end_time or 0) <= (route.end_time or 0)
    assert [step.start_time for step in steps] == sorted(step.start_time or 0 for step in steps)


async def test_a_new_trace_starts_without_a_caller_and_logs_name_it(
    router_factory: RouterFactory, exporter: InMemorySpanExporter
) -> None:
    router = await router_factory(
        fake_edge=ScriptedEdge(), cloud=closed_cloud(), tracing=tracing(exporter)
    )
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as lines:
        response = await router.stub.Generate(ask())
    spans = by_name(await finished(exporter))
    trace_id = trace_of(spans["sllm.route"])
    assert response.decision.trace_id == trace_id
    assert spans["sllm.route"].parent is None
    routed = [line for line in lines if line["event"] == "router.routed"]
    assert [(line["trace_id"], line["request_id"]) for line in routed] == [
        (trace_id, response.request_id)
    ]


async def test_an_unsampled_request_records_nothing_and_names_no_trace(
    router_factory: RouterFactory, exporter: InMemorySpanExporter
) -> None:
    router = await router_factory(
        fake_edge=ScriptedEdge(),
        cloud=closed_cloud(),
        tracing=tracing(exporter, sampling_ratio=0.0),
    )
    response = await router.stub.Generate(ask())
    assert route_name(response) == "EDGE"
    assert response.decision.trace_id == ""
    # A sampled caller's request next: once its spans are made, the first's would be too.
    await router.stub.Generate(ask(), metadata=(("traceparent", TRACEPARENT),))
    assert {trace_of(span) for span in await finished(exporter)} == {CALLER_TRACE}


async def test_the_callers_decision_not_to_sample_is_kept(
    router_factory: RouterFactory, exporter: InMemorySpanExporter
) -> None:
    router = await router_factory(
        fake_edge=ScriptedEdge(), cloud=closed_cloud(), tracing=tracing(exporter)
    )
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    response = await router.stub.Generate(ask(), metadata=(("traceparent", unsampled),))
    assert response.decision.trace_id == ""
    # The same caller's next request, sampled: only its spans are made.
    sampled = await router.stub.Generate(ask(), metadata=(("traceparent", TRACEPARENT),))
    routes = [span for span in await finished(exporter) if span.name == "sllm.route"]
    assert [route.attributes["sllm.request_id"] for route in routes] == [sampled.request_id]  # type: ignore[index]


async def test_tracing_off_by_default_names_no_trace_and_sends_no_traceparent(
    router_factory: RouterFactory,
) -> None:
    edge = ScriptedEdge()
    router = await router_factory(fake_edge=edge, cloud=closed_cloud())
    assert not router.server.router.tracing.enabled
    response = await router.stub.Generate(ask(), metadata=(("traceparent", TRACEPARENT),))
    assert response.decision.trace_id == ""
    assert dict(edge.calls[0].trace_headers) == {}


async def test_an_unanswered_request_is_an_error_span_saying_why(
    router_factory: RouterFactory, exporter: InMemorySpanExporter
) -> None:
    edge = ScriptedEdge([EdgeReply(fail="UNAVAILABLE")])
    router = await router_factory(fake_edge=edge, cloud=closed_cloud(), tracing=tracing(exporter))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await router.stub.Generate(ask(local_only=True))
    spans = by_name(await finished(exporter))
    route, edge_span = spans["sllm.route"], spans["sllm.edge"]
    assert route.status.status_code == StatusCode.ERROR
    assert route.status.description == raised.value.details()
    assert edge_span.status.status_code == StatusCode.ERROR
    assert "UNAVAILABLE" in (edge_span.status.description or "")
    assert "sllm.cloud" not in spans


async def test_the_http_door_honours_traceparent_and_names_the_trace(
    router_factory: RouterFactory, exporter: InMemorySpanExporter
) -> None:
    router = await router_factory(
        fake_edge=ScriptedEdge(), cloud=closed_cloud(), http=True, tracing=tracing(exporter)
    )
    async with httpx2.AsyncClient(base_url=router.http_url) as client:
        reply = await client.post(
            "/v1/chat/completions",
            json={"model": "sllm-auto", "messages": [{"role": "user", "content": "Hi?"}]},
            headers={"traceparent": TRACEPARENT},
        )
        streamed = await client.post(
            "/v1/chat/completions",
            json={
                "model": "sllm-auto",
                "stream": True,
                "messages": [{"role": "user", "content": "Hi?"}],
            },
            headers={"traceparent": TRACEPARENT},
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["sllm"]["decision"]["trace_id"] == CALLER_TRACE
    assert streamed.status_code == 200
    routes = [s for s in await finished(exporter, requests=2) if s.name == "sllm.route"]
    assert len(routes) == 2
    for route in routes:
        assert (trace_of(route), parent_of(route)) == (CALLER_TRACE, CALLER_SPAN)
    final = [
        json.loads(line.removeprefix("data: "))
        for line in streamed.text.splitlines()
        if line.startswith("data: {")
    ][-1]
    assert final["sllm"]["decision"]["trace_id"] == CALLER_TRACE
