"""`sllm up`: the edge worker, the cloud stand-in (unless a cloud is configured) and the
router, started together, one line each saying where it listens; Ctrl-C stops all.

The edge worker runs inside the router's process unless `edge_process` asks for its own:
the hop between two processes costs more than the router's whole decision."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import TextIO

from router.edge_client import EdgeClient
from router.server import RouterServer, serve
from sllm import children
from sllm.models import bundled_model_path
from sllm.settings import IN_PROCESS, Settings

EDGE_READY_TIMEOUT_S = 180.0


def cloud_is_configured(settings: Settings) -> bool:
    """A cloud other than the local stand-in's address counts as configured."""
    standin = f"http://127.0.0.1:{settings.cloud.standin_port}/v1"
    return settings.cloud.base_url.rstrip("/") != standin


def _quiet_env() -> dict[str, str]:
    # Children log warnings only, so the terminal shows the one line per component.
    return {**os.environ, "SLLM_LOG__LEVEL": os.environ.get("SLLM_LOG__LEVEL", "warning")}


async def _start_edge(settings: Settings) -> asyncio.subprocess.Process:
    edge = settings.edge
    process = await children.create_subprocess_exec(
        sys.executable,
        *("-m", "sllm", "edge", "serve", "--port", str(edge.port)),
        *("--metrics-port", str(edge.metrics_port)),
        env=_quiet_env(),
    )
    client = EdgeClient(f"{edge.host}:{edge.port}", tls=settings.router.edge_tls)
    deadline = time.monotonic() + EDGE_READY_TIMEOUT_S
    try:
        while not await client.healthy():
            if process.returncode is not None:
                raise RuntimeError(f"the edge worker exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the edge worker was not ready in {EDGE_READY_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.25)
    except BaseException:
        await _stop(process)
        raise
    finally:
        await client.aclose()
    return process


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()
        except asyncio.CancelledError:
            # A second Ctrl-C or SIGTERM: stop at once, not after the worker's own drain.
            process.kill()
            raise


async def up(settings: Settings, out: TextIO = sys.stdout, *, edge_process: bool = False) -> int:
    from cloud_adapter import standin

    edge = await _start_edge(settings) if edge_process else None
    cloud: standin.StandIn | None = None
    try:
        if edge is None:
            edge_target = IN_PROCESS
            model = settings.edge.model_path or bundled_model_path()
            out.write(f"edge worker  in the router's process  model {model.name}\n")
        else:
            edge_target = f"{settings.edge.host}:{settings.edge.port}"
            out.write(f"edge worker  grpc {edge_target}  metrics :{settings.edge.metrics_port}\n")
        if not cloud_is_configured(settings):
            cloud = await asyncio.to_thread(
                standin.start,
                port=settings.cloud.standin_port,
                model_alias=settings.cloud.model,
                output=subprocess.DEVNULL,
                extra_buffers=settings.edge.extra_buffers,
            )
            out.write(f"cloud        {cloud.base_url}  (stand-in: a small local model)\n")
        else:
            out.write(f"cloud        {settings.cloud.base_url}  model {settings.cloud.model}\n")
        router = settings.router.model_copy(update={"edge_target": edge_target})

        def ready(server: RouterServer) -> None:
            out.write(f"router       grpc {server.target}  metrics :{router.metrics_port}\n")
            if server.http is not None:
                out.write(f"http door    {server.http.url}/v1  (OpenAI API: model sllm-auto)\n")
            out.write('ready: sllm ask "What is 12 + 30?"  (Ctrl-C stops all)\n')
            out.flush()

        await serve(settings.model_copy(update={"router": router}), on_ready=ready)
    finally:
        if cloud is not None:
            cloud.stop()
        if edge is not None:
            await _stop(edge)
    return 0
