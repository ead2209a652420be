"""The gRPC door's token check: a server interceptor that asks `Access` about every call
but health's (probes carry no token) before the servicer sees it, and makes the caller
known to the call (`current_caller`) so that its tenant is the token's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from router import metrics, status
from router.auth.access import Access, Action, Caller, Refused, current_caller
from sllm.status import abort

_ACTIONS: dict[str, Action] = {
    "/sllm.v1.Router/Generate": "generate",
    "/sllm.v1.Router/GenerateStream": "generate",
    "/sllm.v1.Router/Feedback": "feedback",
    "/sllm.v1.Router/GetPolicy": "describe",
    "/sllm.v1.Router/RollbackPolicy": "rollback",
}
_OPEN_SERVICE = "/grpc.health.v1.Health/"
if TYPE_CHECKING:
    # Generic only in the type stubs.
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    Interceptor: TypeAlias = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler, Context = grpc.RpcMethodHandler, grpc.aio.ServicerContext
    Interceptor = grpc.aio.ServerInterceptor


async def _abort(context: Context, refused: Refused) -> None:
    metrics.REFUSALS.labels(refused.status.upper()).inc()
    await abort(context, status.from_error(refused))


def _refusing(handler: Handler, refused: Refused) -> Handler:
    """A handler of the same kind as `handler` that only says no."""

    async def refuse(request: Any, context: Context) -> None:
        await _abort(context, refused)

    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse)
    return grpc.stream_stream_rpc_method_handler(refuse)


def _as_caller(handler: Handler, caller: Caller) -> Handler:
    """`handler` with `caller` known to its call; a `Refused` it raises (a request that
    claims another tenant) becomes its status."""
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary: Any = handler.unary_unary

        async def call(request: Any, context: Context) -> Any:
            current_caller.set(caller)
            try:
                return await unary(request, context)
            except Refused as refused:
                await _abort(context, refused)

        return grpc.unary_unary_rpc_method_handler(call, **serializers)
    if handler.unary_stream is not None:
        streaming: Any = handler.unary_stream

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            current_caller.set(caller)
            try:
                async for item in streaming(request, context):
                    yield item
            except Refused as refused:
                await _abort(context, refused)

        return grpc.unary_stream_rpc_method_handler(stream, **serializers)
    # Reflection: allowed to describe, and has no tenant.
    return handler


class TokenCheck(Interceptor):
    def __init__(self, access: Access) -> None:
        self._access = access

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        # None (grpc's stubs say otherwise): no such method, which grpc answers itself.
        if handler is None or self._access.open or details.method.startswith(_OPEN_SERVICE):
            return handler
        header = next(
            (str(value) for key, value in details.invocation_metadata if key == "authorization"),
            None,
        )
        try:
            caller = self._access.caller(header, _ACTIONS.get(details.method, "describe"))
        except Refused as refused:
            return _refusing(handler, refused)
        assert caller is not None
        return _as_caller(handler, caller)
