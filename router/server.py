"""Starting and stopping the router: gRPC (with health and reflection), the HTTP door and
metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import time
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from router.active_policy import ActivePolicy
from router.auth.interceptor import TokenCheck
from router.drain import Drain
from router.edge_client import Edge, EdgeClient
from router.estimators import CloudLatency, EdgeLatency
from router.http.door import HttpDoor
from router.outcomes import OutcomeLog
from router.pipeline import Router
from router.relearn import Relearner
from router.scorer import default_policy_dir
from router.service import RouterServicer
from router.store import store_url
from sllm.metrics_server import serve_metrics
from sllm.settings import IN_PROCESS, Settings
from sllm.tls import add_port
from sllm.tracing import Tracing, start_tracing
from sllm.v1 import router_pb2

log = structlog.get_logger("router.server")
SERVICE = "sllm.v1.Router"
# Until the edge worker reports its own speed (its Info), assume a small CPU model.
_EDGE_PRIOR_PREFILL_TOKENS_PER_S = 300.0
_EDGE_PRIOR_DECODE_TOKENS_PER_S = 30.0


def _lenient(message: type[Message]) -> Callable[[bytes], Message | None]:
    """A request that does not parse (e.g. invalid UTF-8 in a string) reaches the servicer
    as None, so it can answer INVALID_ARGUMENT with a message rather than grpc's INTERNAL."""

    def parse(data: bytes) -> Message | None:
        try:
            return message.FromString(data)
        except DecodeError:
            return None

    return parse


def _handlers(servicer: RouterServicer, drain: Drain) -> grpc.GenericRpcHandler[Any, Any]:
    def unary(
        method: Any, request: type[Message], reply: type[Message]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            drain.unary(method),
            request_deserializer=_lenient(request),
            response_serializer=reply.SerializeToString,
        )

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Generate": unary(servicer.Generate, router_pb2.RouteRequest, router_pb2.RouteResponse),
            "GenerateStream": grpc.unary_stream_rpc_method_handler(
                drain.stream(servicer.GenerateStream),
                request_deserializer=_lenient(router_pb2.RouteRequest),
                response_serializer=router_pb2.RouteEvent.SerializeToString,
            ),
            "Feedback": unary(
                servicer.Feedback, router_pb2.FeedbackRequest, router_pb2.FeedbackResponse
            ),
            "GetPolicy": unary(
                servicer.GetPolicy, router_pb2.GetPolicyRequest, router_pb2.PolicyInfo
            ),
            "RollbackPolicy": unary(
                servicer.RollbackPolicy, router_pb2.RollbackPolicyRequest, router_pb2.PolicyInfo
            ),
        },
    )


async def _edge(settings: Settings) -> Edge:
    """The edge the settings name: a worker's gRPC address, or one loaded in this process
    (ModelLoadError if its model cannot be loaded)."""
    if settings.router.edge_target != IN_PROCESS:
        return EdgeClient(settings.router.edge_target, tls=settings.router.edge_tls)
    from edge_worker.worker import load_worker
    from router.local_edge import LocalEdge

    worker = await asyncio.to_thread(load_worker, settings.edge)
    log.info("router.edge_in_process", model=worker.model.name, model_path=str(worker.model.path))
    return LocalEdge(worker)


async def build_router(
    settings: Settings, *, edge: Edge | None = None, tracing: Tracing | None = None
) -> Router:
    """The router with its clients, the active policy and the outcome log. `edge`: the
    edge to call instead of the one the settings name (a test's scripted edge).
    `tracing`: where spans go; None: as `observability` says (off by default)."""
    from cloud_adapter import CloudClient

    if tracing is None:
        tracing = start_tracing(settings.observability, service="sllm-router")
    if edge is None:
        edge = await _edge(settings)
    prefill, decode = _EDGE_PRIOR_PREFILL_TOKENS_PER_S, _EDGE_PRIOR_DECODE_TOKENS_PER_S
    try:
        info = await edge.info()
        prefill, decode = info.prefill_tokens_per_s or prefill, info.decode_tokens_per_s or decode
    except grpc.aio.AioRpcError as error:
        log.warning("router.edge_info_unavailable", target=edge.target, error=error.code().name)
    outcomes = await asyncio.to_thread(
        OutcomeLog,
        store_url(settings.router),
        store_prompts=settings.router.store_prompts,
        queue_size=settings.router.outcome_queue_size,
    )
    policies = await asyncio.to_thread(
        ActivePolicy, settings.router.policy_dir or default_policy_dir(), outcomes.store
    )
    router = Router(
        settings.router,
        edge=edge,
        cloud=CloudClient(settings.cloud, tracer=tracing.tracer),
        policies=policies,
        outcomes=outcomes,
        edge_latency=EdgeLatency(prefill_tokens_per_s=prefill, decode_tokens_per_s=decode),
        cloud_latency=CloudLatency(
            ttft_ms=settings.router.cloud_ttft_ms_prior,
            ms_per_token=settings.router.cloud_ms_per_token_prior,
        ),
        tracing=tracing,
    )
    # What start-up built (models, clients, modules) lives as long as the process: moved
    # out of the collector's reach, a full collection no longer walks it in mid-request.
    gc.freeze()
    return router


class RouterServer:
    """The router on a port, and its HTTP door on another unless `http_port` is None (0:
    a free port): `await start()`, then `await stop()`."""

    def __init__(
        self, router: Router, *, host: str, port: int, http_port: int | None = None
    ) -> None:
        self.router = router
        self.http = None if http_port is None else HttpDoor(router, host=host, port=http_port)
        self._server = grpc.aio.server(interceptors=[TokenCheck(router.access)])
        self._drain = Drain()
        self._server.add_generic_rpc_handlers((_handlers(RouterServicer(router), self._drain),))
        # grpc-stubs does not describe the asyncio health servicer.
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        self.port = add_port(self._server, f"{host}:{port}", router.settings.tls)
        self.target = f"{host}:{self.port}"
        self._host = host
        self._watch: asyncio.Task[None] | None = None
        self._stopped = False
        self._terminated = asyncio.Event()

    async def start(self) -> None:
        await self._server.start()
        if self.http is not None:
            await self.http.start()
        await self._set_health()
        self._watch = asyncio.create_task(self._keep_health())
        log.info(
            "router.listening",
            port=self.port,
            target=self.target,
            http=self.http.url if self.http else None,
            tls=self.router.settings.tls.enabled,
            mutual_tls=self.router.settings.tls.client_ca_file is not None,
            tenants=self.router.access.tenants,
        )
        if self.router.access.open and not loopback(self._host):
            log.warning(
                "router.open",
                host=self._host,
                advice="no API tokens: whoever reaches this address may use the router and "
                "its cloud key; set router.tokens_file or SLLM_ROUTER__TOKENS (docs/security.md)",
            )

    async def _set_health(self) -> None:
        serving = self.router.edge_available or self.router.cloud_available
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE):
            await self._health.set(service, status)

    async def _keep_health(self) -> None:
        router = self.router
        relearner = Relearner(router.settings, outcomes=router.outcomes, policies=router.policies)
        watch = asyncio.gather(router.watch(), relearner.run())
        try:
            while True:
                await asyncio.sleep(min(self.router.settings.health_interval_s, 1.0))
                await self._set_health()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def stop(self, grace_s: float = 5.0) -> None:
        """Health NOT_SERVING first, for good; new requests refused (gRPC: UNAVAILABLE,
        saying so; HTTP: the port closed); those in flight on both doors may finish within
        `grace_s`; then what is left is cancelled and the router closed, its outcome log
        flushed. Cancelled while draining (a second SIGTERM): stops at once, then
        re-raises."""
        if self._stopped:
            return
        self._stopped = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self._health.enter_graceful_shutdown()
        started = time.monotonic()
        log.info("router.draining", in_flight=self._drain.running, grace_s=grace_s)
        doors: list[Coroutine[Any, Any, object]] = [self._drain.finish(grace_s)]
        if self.http is not None:
            doors.append(self.http.stop(grace_s))
        interrupted = False
        try:
            await asyncio.gather(*doors)
        except asyncio.CancelledError:
            interrupted = True
        cut = self._drain.running
        await self._server.stop(0)
        await self.router.aclose()
        self._terminated.set()
        log.info(
            "router.drained",
            cut=cut,
            interrupted=interrupted,
            drain_s=round(time.monotonic() - started, 3),
        )
        if interrupted:
            raise asyncio.CancelledError

    async def wait(self) -> None:
        """Until `stop` has finished. Not grpc's wait_for_termination: cancelled (by the
        first SIGTERM), it cancels the future that grpc's own stop then awaits, so that
        stop raised CancelledError before the router was closed and its log flushed."""
        await self._terminated.wait()


def loopback(host: str) -> bool:
    """Only this machine can reach `host`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


async def serve(
    settings: Settings, *, on_ready: Callable[[RouterServer], None] | None = None
) -> None:
    """Runs the router (and its metrics endpoint) until cancelled (Ctrl-C)."""
    router = await build_router(settings)
    if settings.router.metrics_port:
        check = router.access.metrics_status if settings.router.metrics_require_token else None
        serve_metrics(
            settings.router.host, settings.router.metrics_port, settings.router.tls, check=check
        )
    server = RouterServer(
        router,
        host=settings.router.host,
        port=settings.router.port,
        http_port=settings.router.http_port or None,
    )
    await server.start()
    started = time.monotonic()
    try:
        if on_ready is not None:
            on_ready(server)
        await server.wait()
    finally:
        await server.stop(grace_s=settings.router.shutdown_grace_s)
        log.info("router.stopped", uptime_s=round(time.monotonic() - started, 1))
