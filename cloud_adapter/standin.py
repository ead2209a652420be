"""A local stand-in for a cloud model, for demos and tests with no internet.

It is `llama_cpp.server` (a real OpenAI-compatible HTTP server) serving a small GGUF model
on 127.0.0.1: the same API as a cloud endpoint, none of a cloud model's quality.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cloud_adapter.standin_server import NO_EXTRA_BUFFERS
from edge_worker.portability import extra_buffers_enabled
from sllm import children
from sllm.models import bundled_model_path
from sllm.settings import ExtraBuffersSetting

HOST = "127.0.0.1"


class StandInFailed(RuntimeError):
    """The stand-in server exited or did not become ready in time."""


@dataclass
class StandIn:
    process: subprocess.Popen[bytes]
    base_url: str
    model: str

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_command(
    model_path: Path,
    *,
    port: int,
    model_alias: str,
    api_key: str | None = None,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    extra_buffers: bool = True,
) -> list[str]:
    command = [
        sys.executable, "-m", "cloud_adapter.standin_server",
        "--model", str(model_path),
        "--model_alias", model_alias,
        "--host", HOST,
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--verbose", "False",
    ]  # fmt: skip
    if n_threads is not None:
        command += ["--n_threads", str(n_threads)]
    if api_key is not None:
        command += ["--api_key", api_key]
    if not extra_buffers:
        command.append(NO_EXTRA_BUFFERS)
    return command


def start(
    *,
    port: int,
    model_path: Path | None = None,
    model_alias: str = "standin",
    api_key: str | None = None,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    output: IO[bytes] | int | None = None,
    ready_timeout_s: float = 120.0,
    extra_buffers: ExtraBuffersSetting = "auto",
) -> StandIn:
    """Starts the server and returns once it answers; `output` takes its stdout and stderr
    (uvicorn's access log: one line per request). `extra_buffers` as the edge's setting:
    the same llama.cpp, on the same CPU."""
    path = model_path or bundled_model_path()
    if not path.is_file():
        raise StandInFailed(f"model file not found: {path}")
    command = server_command(
        path,
        port=port,
        model_alias=model_alias,
        api_key=api_key,
        n_ctx=n_ctx,
        n_threads=n_threads,
        extra_buffers=extra_buffers_enabled(extra_buffers),
    )
    process = children.popen(command, stdout=output, stderr=subprocess.STDOUT)
    standin = StandIn(process=process, base_url=f"http://{HOST}:{port}/v1", model=model_alias)
    try:
        wait_until_ready(standin, timeout_s=ready_timeout_s)
    except BaseException:
        standin.stop()
        raise
    return standin


def wait_until_ready(standin: StandIn, *, timeout_s: float) -> None:
    """Polls GET /models until it answers (any HTTP status: 401 means up, with a key)."""
    give_up_at = time.monotonic() + timeout_s
    while time.monotonic() < give_up_at:
        if (code := standin.process.poll()) is not None:
            raise StandInFailed(f"llama_cpp.server exited with status {code} before it was ready")
        try:
            with urllib.request.urlopen(f"{standin.base_url}/models", timeout=1.0):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise StandInFailed(f"llama_cpp.server not ready at {standin.base_url} after {timeout_s:.0f} s")
