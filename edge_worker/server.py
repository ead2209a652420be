"""Assembles and runs the edge worker: model, engine, gRPC (+ health, reflection), metrics."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edge_worker.service import SERVICE_NAME, EdgeWorkerServicer, add_to_server
from edge_worker.worker import EdgeWorker, load_worker
from sllm.metrics_server import serve_metrics
from sllm.settings import EdgeSettings
from sllm.tls import add_port
from sllm.tracing import Tracing

log = structlog.get_logger(__name__)


class ListenError(RuntimeError):
    """The gRPC or the metrics port cannot be bound (taken, or a bad address)."""


@dataclass
class RunningWorker:
    server: grpc.aio.Server
    worker: EdgeWorker
    port: int
    metrics_port: int
    tracing: Tracing

    async def stop(self, grace: float = 2.0) -> None:
        await self.server.stop(grace)
        self.worker.close()
        await asyncio.to_thread(self.tracing.shutdown)


async def start(settings: EdgeSettings, tracing: Tracing | None = None) -> RunningWorker:
    """Loads the model (ModelLoadError if it cannot), then starts serving. `tracing`: a
    caller's trace continues here with a span per call (None: off)."""
    tracing = tracing or Tracing.off()
    worker = load_worker(settings)
    model, speed = worker.model, worker.speed
    # No SO_REUSEPORT: a second worker on a taken port must fail, not share it silently.
    server = grpc.aio.server(
        interceptors=tracing.grpc_server_interceptors(), options=[("grpc.so_reuseport", 0)]
    )
    add_to_server(EdgeWorkerServicer(worker), server)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port}"
    try:
        port = add_port(server, address, settings.tls)
    except RuntimeError as error:
        raise ListenError(f"cannot listen on {address} (is the port taken?): {error}") from error
    try:
        _, metrics_port = serve_metrics(
            settings.host, settings.metrics_port, settings.tls, registry=worker.metrics.registry
        )
    except OSError as error:
        raise ListenError(
            f"cannot serve metrics on {settings.host}:{settings.metrics_port}: {error}"
        ) from error
    await server.start()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "edge.listening",
        port=port,
        metrics_port=metrics_port,
        model=model.name,
        model_path=str(model.path),
        context_size=model.n_ctx,
        prefill_tokens_per_s=round(speed.prefill_tokens_per_s, 1),
        decode_tokens_per_s=round(speed.decode_tokens_per_s, 1),
        queue_size=settings.queue_size,
        tls=settings.tls.enabled,
        mutual_tls=settings.tls.client_ca_file is not None,
        tracing=tracing.enabled,
    )
    return RunningWorker(server, worker, port, metrics_port, tracing)


async def serve(settings: EdgeSettings, tracing: Tracing | None = None) -> None:
    """Runs until SIGINT/SIGTERM."""
    worker = await start(settings, tracing)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("edge.stopping")
    await worker.stop()
