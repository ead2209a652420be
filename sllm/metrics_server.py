"""A component's Prometheus endpoint, in a thread of its own: over TLS when the settings
have a certificate, and behind the router's token check when it has one (the router's
own decision, passed in: metrics know nothing of tokens)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from sllm.settings import TlsSettings
from sllm.tls import server_context

# The request's Authorization header (None: not sent) -> None when it may read the
# metrics, else the status that refuses it (401, 403).
Check = Callable[[str | None], HTTPStatus | None]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """A scrape every few seconds is not worth a line."""


def _guarded(app: Any, check: Check) -> Any:
    def guarded(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        refused = check(environ.get("HTTP_AUTHORIZATION"))
        if refused is None:
            return app(environ, start_response)  # type: ignore[no-any-return]
        start_response(
            f"{refused.value} {refused.phrase}",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
        )
        return [b"metrics need a token with the metrics or admin role\n"]

    return guarded


def serve_metrics(
    host: str,
    port: int,
    tls: TlsSettings,
    *,
    registry: CollectorRegistry = REGISTRY,
    check: Check | None = None,
) -> tuple[WSGIServer, int]:
    """Serves `registry` on host:port (0: a free port) until the process ends; returns
    the server (`shutdown()` stops it) and its port. OSError when it cannot listen."""
    app = make_wsgi_app(registry)
    if check is not None:
        app = _guarded(app, check)

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = make_server(host, port, app, Server, handler_class=_Quiet)
    if tls.enabled:
        server.socket = server_context(tls).wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server, int(server.server_address[1])
