"""The gRPC servicer: serves an `EdgeWorker`, mapping its errors to statuses with details
(sllm/status.py), here and only here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc
import structlog
from google.rpc import status_pb2

from edge_worker.engine import QueueFull
from edge_worker.wire import Undecodable, lenient_deserializer
from edge_worker.worker import EdgeWorker
from sllm.status import abort, exhausted, invalid_argument, status
from sllm.v1 import edge_pb2
from sllm.wire import InvalidRequest

SERVICE_NAME = edge_pb2.DESCRIPTOR.services_by_name["EdgeWorker"].full_name

log = structlog.get_logger(__name__)


def undecodable(request: Undecodable) -> status_pb2.Status:
    return invalid_argument(InvalidRequest(request.reason, field=request.field))


def from_error(error: Exception) -> status_pb2.Status:
    """The status a Generate call ends with for what the worker raised."""
    if isinstance(error, InvalidRequest):
        return invalid_argument(error)
    if isinstance(error, QueueFull):
        return exhausted(str(error), "EDGE_QUEUE_FULL")
    return status(grpc.StatusCode.INTERNAL, f"generation failed: {error!r}")


class EdgeWorkerServicer:
    def __init__(self, worker: EdgeWorker) -> None:
        self._worker = worker

    async def Generate(
        self,
        request: edge_pb2.EdgeGenerateRequest | Undecodable,
        context: grpc.aio.ServicerContext[edge_pb2.EdgeGenerateRequest, edge_pb2.EdgeGenerateEvent],
    ) -> AsyncIterator[edge_pb2.EdgeGenerateEvent]:
        structlog.contextvars.clear_contextvars()
        if isinstance(request, Undecodable):
            self._worker.rejected(request.reason)
            await abort(context, undecodable(request))
        structlog.contextvars.bind_contextvars(request_id=request.request_id or None)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            async with aclosing(self._worker.generate(request, deadline=deadline)) as events:
                async for event in events:
                    yield event
        except (InvalidRequest, QueueFull) as error:  # the worker counted it
            await abort(context, from_error(error))
        except Exception as error:  # a failing generation degrades this call, not the worker
            log.exception("edge.generate_failed")
            await abort(context, from_error(error))

    async def Info(
        self,
        request: edge_pb2.EdgeInfoRequest | Undecodable,
        context: grpc.aio.ServicerContext[edge_pb2.EdgeInfoRequest, edge_pb2.EdgeInfo],
    ) -> edge_pb2.EdgeInfo:
        if isinstance(request, Undecodable):
            await abort(context, undecodable(request))
        return self._worker.info()


def add_to_server(servicer: EdgeWorkerServicer, server: grpc.aio.Server) -> None:
    """Like the generated `add_EdgeWorkerServicer_to_server`, but Generate's request
    deserializer reports bad bytes (e.g. invalid UTF-8) as INVALID_ARGUMENT."""
    handlers = {
        "Generate": grpc.unary_stream_rpc_method_handler(
            servicer.Generate,
            request_deserializer=lenient_deserializer(edge_pb2.EdgeGenerateRequest),
            response_serializer=edge_pb2.EdgeGenerateEvent.SerializeToString,
        ),
        "Info": grpc.unary_unary_rpc_method_handler(
            servicer.Info,
            request_deserializer=lenient_deserializer(edge_pb2.EdgeInfoRequest),
            response_serializer=edge_pb2.EdgeInfo.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
