"""An OTLP/HTTP traces endpoint in this process: it decodes each export with the OTLP
protobuf messages, as a collector would, and keeps what arrived. The tracing tests read
it; `sllm bench router` sends a traced router's spans to it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


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
        found: list[trace_pb2.Span] = []
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

    def span_count(self) -> int:
        return sum(
            len(scope.spans)
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )
