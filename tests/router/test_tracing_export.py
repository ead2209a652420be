"""Spans leave over real OTLP/HTTP, as settings ask (`observability.otlp_endpoint`), to a
receiver started here (bench/otlp_receiver.py: an HTTP server on 127.0.0.1 that decodes
what it is sent with the OTLP protobuf messages, as a collector would). Nothing is faked
between the router's exporter and that receiver; the edge is scripted in the first test
(its branch does not matter) and a real worker process in the second (slow tier), whose
spans join the trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from bench.otlp_receiver import Receiver
from edge_worker.process import EdgeWorkerProcess
from sllm.settings import ObservabilitySettings
from sllm.tracing import start_tracing
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.router.requests import ask, route_name
from tests.router.test_tracing import CALLER_SPAN, CALLER_TRACE, TRACEPARENT


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


async def test_spans_reach_an_otlp_receiver_as_the_settings_ask(
    router_factory: RouterFactory, receiver: Receiver
) -> None:
    tracing = start_tracing(
        ObservabilitySettings(otlp_endpoint=receiver.url), service="sllm-router"
    )
    router = await router_factory(fake_edge=ScriptedEdge(), cloud=closed_cloud(), tracing=tracing)
    response = await router.stub.Generate(ask(), metadata=(("traceparent", TRACEPARENT),))
    assert route_name(response) == "EDGE"
    # Spans go out in batches; stopping the router sends what is left.
    await router.server.stop(grace_s=0)
    spans = {span.name: span for span in receiver.spans("sllm-router")}
    assert {"sllm.route", "sllm.decide", "sllm.edge"} <= set(spans)
    assert {span.trace_id.hex() for span in spans.values()} == {CALLER_TRACE}
    assert spans["sllm.route"].parent_span_id.hex() == CALLER_SPAN
    route = {a.key: a.value for a in spans["sllm.route"].attributes}
    assert route["sllm.request_id"].string_value == response.request_id
    assert set(receiver.content_types) == {"application/x-protobuf"}


@pytest.mark.slow
async def test_the_edge_worker_continues_the_routers_trace(
    router_factory: RouterFactory,
    receiver: Receiver,
    edge_worker_factory: Callable[..., EdgeWorkerProcess],
) -> None:
    env = {
        "SLLM_OBSERVABILITY__OTLP_ENDPOINT": receiver.url,
        # The SDK's own setting: send each batch within 50 ms, not 5 s.
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    worker = edge_worker_factory(env=env)
    tracing = start_tracing(
        ObservabilitySettings(otlp_endpoint=receiver.url), service="sllm-router"
    )
    router = await router_factory(edge_target=worker.target, cloud=closed_cloud(), tracing=tracing)
    response = await router.stub.Generate(
        ask(max_tokens=4), metadata=(("traceparent", TRACEPARENT),)
    )
    assert route_name(response) == "EDGE"
    await router.server.stop(grace_s=0)
    worker.stop()
    router_spans = {span.name: span for span in receiver.spans("sllm-router")}
    edge_spans = {span.name: span for span in receiver.spans("sllm-edge")}
    served = edge_spans["/sllm.v1.EdgeWorker/Generate"]
    # The worker's server span is a child of the router's edge span, in the caller's trace.
    assert served.trace_id.hex() == CALLER_TRACE
    assert served.parent_span_id == router_spans["sllm.edge"].span_id
    assert served.kind == trace_pb2.Span.SPAN_KIND_SERVER
