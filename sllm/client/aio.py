"""The asyncio client: `async with AsyncRouterClient("127.0.0.1:50051") as router: await
router.generate(...)`; the same calls as `RouterClient`, awaited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self, Unpack

import grpc

from sllm.client.base import BaseClient, Messages, Options, Request, Response
from sllm.client.errors import raising_router_errors
from sllm.client.results import (
    Event,
    PolicyInfo,
    Result,
    event_from_wire,
    policy_from_wire,
    result_from_wire,
)
from sllm.v1 import router_pb2, router_pb2_grpc


class AsyncRouterClient(BaseClient):
    """The Router API over an asyncio gRPC channel; a failed call raises `RouterError`."""

    def _connect(self) -> None:
        self._channel = self._open(grpc.aio.insecure_channel, grpc.aio.secure_channel)
        self._stub = router_pb2_grpc.RouterStub(self._channel)

    async def _unary(
        self,
        call: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        timeout_s: float | None,
    ) -> Response:
        with raising_router_errors():
            return await call(request, timeout=timeout_s, metadata=self._metadata)

    async def generate(self, messages: Messages, **options: Unpack[Options]) -> Result:
        request, timeout_s = self._route_request(messages, options)
        return result_from_wire(await self._unary(self._stub.Generate, request, timeout_s))

    async def stream(self, messages: Messages, **options: Unpack[Options]) -> AsyncIterator[Event]:
        """As `RouterClient.stream`: deltas, a `Reset` on escalation, then the `Result`."""
        request, timeout_s = self._route_request(messages, options)
        call = self._stub.GenerateStream(request, timeout=timeout_s, metadata=self._metadata)
        try:
            with raising_router_errors():
                async for event in call:
                    yield event_from_wire(event)
        finally:
            call.cancel()

    async def feedback(
        self, request_id: str, score: float, source: str = "user", *, timeout_s: float | None = None
    ) -> None:
        request = router_pb2.FeedbackRequest(request_id=request_id, score=score, source=source)
        await self._unary(self._stub.Feedback, request, self._call_timeout(timeout_s))

    async def policy(self, *, timeout_s: float | None = None) -> PolicyInfo:
        request = router_pb2.GetPolicyRequest()
        info = await self._unary(self._stub.GetPolicy, request, self._call_timeout(timeout_s))
        return policy_from_wire(info)

    async def rollback(self, *, timeout_s: float | None = None) -> PolicyInfo:
        request = router_pb2.RollbackPolicyRequest()
        info = await self._unary(self._stub.RollbackPolicy, request, self._call_timeout(timeout_s))
        return policy_from_wire(info)

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
