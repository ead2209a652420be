"""The `sllm.v1.Router` servicer: messages in, `Router` calls, messages out; nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import NoReturn

import grpc
from google.rpc import status_pb2
from opentelemetry import context as otel_context

from router import metrics, spans, status, wire
from router.active_policy import NoEarlierPolicy
from router.cascade import RouteFailed
from router.outcomes import OutcomeLogFull
from router.pipeline import Router
from router.policy import NoRoute
from router.query import Query
from router.validate import check_feedback, to_query
from sllm.status import Context, abort, code_of
from sllm.tracing import caller_context
from sllm.v1 import router_pb2, router_pb2_grpc
from sllm.wire import InvalidRequest


async def _query(
    request: router_pb2.RouteRequest | None, router: Router, context: Context
) -> Query:
    if request is None:
        await _abort(context, status.undecodable())
    try:
        return to_query(request, router.settings)
    except InvalidRequest as error:
        await _abort(context, status.from_error(error))


def _caller(router: Router, context: Context) -> otel_context.Context | None:
    """The caller's trace from its metadata. Read here rather than by the gRPC
    instrumentation's interceptor, which costs every call (traced or not) about 0.2 ms."""
    if not router.tracing.enabled:
        return None
    return caller_context(tuple(context.invocation_metadata() or ()))


def _after_rpc(context: Context) -> spans.AfterAnswer:
    """Work for once the call has ended, its answer or its status sent."""

    def later(work: Callable[[], None]) -> None:
        if context.done():
            work()
        else:
            # grpc-stubs declare the callback a class, where any callable will do.
            context.add_done_callback(lambda _: work())  # type: ignore[arg-type]

    return later


async def _abort(context: Context, proto: status_pb2.Status) -> NoReturn:
    code = code_of(proto)
    if code != grpc.StatusCode.INVALID_ARGUMENT:
        metrics.FAILURES.labels(code.name).inc()
    await abort(context, proto)


class RouterServicer(router_pb2_grpc.RouterServicer):
    def __init__(self, router: Router) -> None:
        self._router = router

    async def Generate(
        self, request: router_pb2.RouteRequest, context: Context
    ) -> router_pb2.RouteResponse:
        query = await _query(request, self._router, context)
        try:
            result = await self._router.generate(
                query,
                grpc_remaining_s=context.time_remaining(),
                trace_context=_caller(self._router, context),
                after_answer=_after_rpc(context),
            )
        except (NoRoute, RouteFailed) as error:
            await _abort(context, status.from_error(error))
        return wire.response(result)

    async def GenerateStream(
        self, request: router_pb2.RouteRequest, context: Context
    ) -> AsyncIterator[router_pb2.RouteEvent]:
        query = await _query(request, self._router, context)
        try:
            async for event in self._router.stream(
                query,
                grpc_remaining_s=context.time_remaining(),
                trace_context=_caller(self._router, context),
                after_answer=_after_rpc(context),
            ):
                yield wire.event(event)
        except (NoRoute, RouteFailed) as error:
            await _abort(context, status.from_error(error))

    async def Feedback(
        self, request: router_pb2.FeedbackRequest | None, context: Context
    ) -> router_pb2.FeedbackResponse:
        if request is None:
            await _abort(context, status.undecodable())
        try:
            check_feedback(request)
            found = await self._router.outcomes.feedback(
                request.request_id, request.score, request.source or "user"
            )
        except (InvalidRequest, OutcomeLogFull) as error:
            await _abort(context, status.from_error(error))
        if not found:
            await _abort(context, status.not_found(request.request_id))
        return router_pb2.FeedbackResponse()

    async def GetPolicy(
        self, request: router_pb2.GetPolicyRequest, context: Context
    ) -> router_pb2.PolicyInfo:
        return wire.policy_info(self._router.policies.current, self._router.stats)

    async def RollbackPolicy(
        self, request: router_pb2.RollbackPolicyRequest, context: Context
    ) -> router_pb2.PolicyInfo:
        try:
            policy = self._router.policies.rollback()
        except NoEarlierPolicy as error:
            await _abort(context, status.from_error(error))
        return wire.policy_info(policy, self._router.stats)
