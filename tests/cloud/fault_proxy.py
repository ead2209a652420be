"""A fault-injecting TCP proxy placed between the cloud client and the real stand-in server.

Each request arrives on its own connection (the proxy asks the server to close after each
response, so the client never reuses one), and takes the next queued fault, if any:
delay it, reset it, answer a status of the proxy's own, cut or stall the response after
some server-sent events, or cut a unary response partway through its body. Without a
fault, bytes pass through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Delay:
    """Hold the request this long, then pass it through."""

    seconds: float


@dataclass(frozen=True)
class Reset:
    """Answer the request with a TCP reset."""


@dataclass(frozen=True)
class Status:
    """Answer with this HTTP status; the server never sees the request."""

    code: int
    retry_after: str | None = None
    body: str = '{"error": {"message": "injected by the fault proxy"}}'


@dataclass(frozen=True)
class CutAfterEvents:
    """Pass the response through, then drop the connection after this many SSE events."""

    events: int


@dataclass(frozen=True)
class StallAfterEvents:
    """Pass the response through, then hold it, connection open, after this many events."""

    events: int


@dataclass(frozen=True)
class CutBody:
    """Pass the response's head and this many bytes of its body through, then drop the
    connection: a unary answer cut short."""

    bytes: int


Fault = Delay | Reset | Status | CutAfterEvents | StallAfterEvents | CutBody


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._faults: deque[Fault] = deque()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.requests = 0
        # Each request's line and headers, and its body, in arrival order (what the
        # client sent).
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def inject(self, *faults: Fault) -> None:
        """Queues faults for the next requests, one each, in order."""
        self._faults.extend(faults)

    def clear(self) -> None:
        """Drops the faults not yet taken: the next requests pass through (a recovery)."""
        self._faults.clear()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head, body = await _read_request(reader)
            self.requests += 1
            self.heads.append(head)
            self.bodies.append(body)
            fault = self._faults.popleft() if self._faults else None
            await self._serve(fault, head, body, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(
        self, fault: Fault | None, head: bytes, body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        match fault:
            case Reset():
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            case Status(code, retry_after, text):
                writer.write(_response(code, retry_after, text.encode()))
                await writer.drain()
                return
            case Delay(seconds):
                await asyncio.sleep(seconds)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        try:
            upstream_writer.write(_connection_close(head) + body)
            await upstream_writer.drain()
            if isinstance(fault, CutBody):
                # The upstream closes after its response (Connection: close).
                response = await upstream_reader.read()
                body_starts = response.index(b"\r\n\r\n") + 4
                writer.write(response[: body_starts + fault.bytes])
                await writer.drain()
                return
            limit = fault.events if isinstance(fault, CutAfterEvents | StallAfterEvents) else None
            events = 0
            while data := await upstream_reader.read(65536):
                if limit is not None:
                    # One read may hold several events: the cut must come right after the
                    # limit-th, not after whatever arrived with it.
                    data = _through_events(data, limit - events)
                writer.write(data)
                await writer.drain()
                events += data.count(b"data: ")
                if limit is not None and events >= limit:
                    if isinstance(fault, StallAfterEvents):
                        await asyncio.sleep(3600)
                    return
        finally:
            upstream_writer.close()


@asynccontextmanager
async def proxying(base_url: str) -> AsyncIterator[FaultProxy]:
    """A proxy in front of the server at `base_url` (http://host:port/...), for the block."""
    upstream = urlsplit(base_url)
    assert upstream.hostname is not None and upstream.port is not None
    proxy = await FaultProxy(upstream.hostname, upstream.port).start()
    try:
        yield proxy
    finally:
        await proxy.aclose()


_EVENT_END = re.compile(rb"\r?\n\r?\n")


def _through_events(data: bytes, count: int) -> bytes:
    """`data` up to the end of its `count`-th server-sent event (all of it, if it holds
    fewer complete ones)."""
    end = 0
    for _ in range(count):
        start = data.find(b"data: ", end)
        blank_line = _EVENT_END.search(data, start) if start >= 0 else None
        if blank_line is None:
            return data
        end = blank_line.end()
    return data[:end]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    # Read the body even when answering alone: closing on unread bytes would send a reset.
    return head, await reader.readexactly(length)


def _connection_close(head: bytes) -> bytes:
    lines = [
        line
        for line in head.rstrip(b"\r\n").split(b"\r\n")
        if not line.lower().startswith(b"connection:")
    ]
    return b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"


def _response(code: int, retry_after: str | None, body: bytes) -> bytes:
    headers = [
        f"HTTP/1.1 {code} Injected",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        headers.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body
