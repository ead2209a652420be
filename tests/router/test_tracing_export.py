"""Spans leave over real OTLP/HTTP, as settings ask (`observability.otlp_endpoint`), to a
receiver started here: an HTTP server on 127.0.0.1 that decodes what it is sent with the
OTLP protobuf messages, as a collector would. Nothing is faked between the router's
exporter and that receiver; the edge is scripted in the first test (its branch does not
matter) and a real worker process in the second (slow tier), whose spans join the trace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from edge_worker.process import EdgeWorkerProcess
from sllm.settings import ObservabilitySettings
from sllm.tracing import start_tracing
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.router.requests import ask, route_name
from tests.router.test_tracing import CALLER_SPAN, CALLER_TRACE, TRACEPARENT


class Receiver:
    """An OTLP/HTTP traces endpoint: what arrived, per service, span by span."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                message = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                receiver.requests.append(message)
                receiver.content_types.append(self.headers["Content-Type"])
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def spans(self, service: str) -> list[trace_pb2.Span]:
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                names = {
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                }
                if service in names:
                    for scope_spans in resource_spans.scope_spans:
                        found.extend(scope_spans.spans)
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


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
    assert {"/sllm.v1.Router/Generate", "sllm.route", "sllm.decide", "sllm.edge"} <= set(spans)
    assert {span.trace_id.hex() for span in spans.values()} == {CALLER_TRACE}
    assert spans["/sllm.v1.Router/Generate"].parent_span_id.hex() == CALLER_SPAN
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
