"""The HTTP door on a port of the router's own event loop, served by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from router.http.app import create_app
from router.pipeline import Router
from sllm.tls import scheme, uvicorn_options


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take SIGINT and SIGTERM over while it serves; the router's process
        # handles them already (Ctrl-C stops every part of `sllm up` together).
        yield


class HttpDoor:
    """`await start()`, then `await stop()`; `port` 0 takes a free one."""

    def __init__(self, router: Router, *, host: str, port: int) -> None:
        self._config = uvicorn.Config(
            create_app(router),
            host=host,
            port=port,
            lifespan="off",
            # The router's structlog lines say what happens; uvicorn keeps quiet.
            log_config=None,
            log_level="warning",
            access_log=False,
            **uvicorn_options(router.settings.tls),
        )
        self._server = _Server(self._config)
        # Bound here rather than by uvicorn, which exits the process when the port is taken:
        # an OSError names the address instead.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family)
        # Accepted connections inherit it. asyncio sets it only on sockets made with
        # proto=IPPROTO_TCP, which these are not; without it, a response's second write
        # waits for the client's delayed ACK on a kept-alive connection: 40 ms a request.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port: int = self._socket.getsockname()[1]
        self.url = f"{scheme(router.settings.tls)}://{host}:{self.port}"
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        # uvicorn says it has started only through this flag.
        while not self._server.started:
            if self._serving.done():
                self._serving.result()
                raise RuntimeError("the HTTP door stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self, grace_s: float = 5.0) -> None:
        if self._serving is None:
            return
        self._config.timeout_graceful_shutdown = max(1, round(grace_s))
        self._server.should_exit = True
        await self._serving
        self._serving = None
