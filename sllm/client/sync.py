"""The blocking client: `with RouterClient("127.0.0.1:50051") as router: router.generate(...)`."""

from __future__ import annotations

from collections.abc import Iterator
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


class RouterClient(BaseClient):
    """The Router API over a blocking gRPC channel; a failed call raises `RouterError`."""

    def _connect(self) -> None:
        self._channel = self._open(grpc.insecure_channel, grpc.secure_channel)
        self._stub = router_pb2_grpc.RouterStub(self._channel)

    def _unary(
        self,
        call: grpc.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        timeout_s: float | None,
    ) -> Response:
        with raising_router_errors():
            return call(request, timeout=timeout_s, metadata=self._metadata)

    def generate(self, messages: Messages, **options: Unpack[Options]) -> Result:
        request, timeout_s = self._route_request(messages, options)
        return result_from_wire(self._unary(self._stub.Generate, request, timeout_s))

    def stream(self, messages: Messages, **options: Unpack[Options]) -> Iterator[Event]:
        """Deltas as the router sends them, a `Reset` when it escalated after edge text was
        sent (discard what was shown), and last the `Result`. Leaving the loop early
        cancels the call."""
        request, timeout_s = self._route_request(messages, options)
        call = self._stub.GenerateStream(request, timeout=timeout_s, metadata=self._metadata)
        try:
            with raising_router_errors():
                for event in call:
                    yield event_from_wire(event)
        finally:
            # grpc-stubs leaves RpcContext.cancel unannotated.
            call.cancel()  # type: ignore[no-untyped-call]

    def feedback(
        self, request_id: str, score: float, source: str = "user", *, timeout_s: float | None = None
    ) -> None:
        """Scores a logged answer in [0, 1] (the learner's labels); `source`: who judged."""
        request = router_pb2.FeedbackRequest(request_id=request_id, score=score, source=source)
        self._unary(self._stub.Feedback, request, self._call_timeout(timeout_s))

    def policy(self, *, timeout_s: float | None = None) -> PolicyInfo:
        request = router_pb2.GetPolicyRequest()
        return policy_from_wire(
            self._unary(self._stub.GetPolicy, request, self._call_timeout(timeout_s))
        )

    def rollback(self, *, timeout_s: float | None = None) -> PolicyInfo:
        """The router returns to the policy before its last swap (needs the admin role)."""
        request = router_pb2.RollbackPolicyRequest()
        info = self._unary(self._stub.RollbackPolicy, request, self._call_timeout(timeout_s))
        return policy_from_wire(info)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
