"""Graceful shutdown's drain: the router's own RPCs in flight, counted, so that a stopping
router refuses new ones with a status that says why and waits for those running. Health
checks and watches are not counted: a client watching health must not hold a stop for
the whole grace period."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from router import status
from sllm.status import abort

_Request = TypeVar("_Request")
_Reply = TypeVar("_Reply")
Context = grpc.aio.ServicerContext[Any, Any]


class Drain:
    def __init__(self) -> None:
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False

    @property
    def running(self) -> int:
        return self._running

    def unary(
        self, method: Callable[[_Request, Context], Awaitable[_Reply]]
    ) -> Callable[[_Request, Context], Awaitable[_Reply]]:
        async def counted(request: _Request, context: Context) -> _Reply:
            await self._enter(context)
            try:
                return await method(request, context)
            finally:
                self._leave()

        return counted

    def stream(
        self, method: Callable[[_Request, Context], AsyncIterator[_Reply]]
    ) -> Callable[[_Request, Context], AsyncIterator[_Reply]]:
        async def counted(request: _Request, context: Context) -> AsyncIterator[_Reply]:
            await self._enter(context)
            try:
                async for reply in method(request, context):
                    yield reply
            finally:
                self._leave()

        return counted

    async def finish(self, timeout_s: float) -> bool:
        """Refuses new calls from now on (UNAVAILABLE); True when every running call ended
        within `timeout_s`."""
        self._draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self._running == 0

    async def _enter(self, context: Context) -> None:
        if self._draining:
            await abort(context, status.shutting_down())
        self._running += 1
        self._idle.clear()

    def _leave(self) -> None:
        self._running -= 1
        if self._running == 0:
            self._idle.set()
