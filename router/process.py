"""A router in a child process (`sllm router serve`), for tests, benchmarks and tools.

The router picks a free port (`--port 0`) and reports it in its "router.listening" JSON
log line, which is how the parent learns it; the log goes to a file, so a chatty router
never blocks on a full pipe, and stays there for inspection.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sllm import children

START_TIMEOUT_S = 90.0


@dataclass
class RouterProcess:
    process: subprocess.Popen[bytes]
    target: str
    log_path: Path

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines of that event, so far."""
        return [line for line in _log_lines(self.log_path) if line.get("event") == name]

    def stop(self) -> None:
        terminate(self.process)


def _log_lines(log_path: Path) -> list[dict[str, Any]]:
    lines = []
    with log_path.open(encoding="utf-8", errors="replace") as text:
        for line in text:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if isinstance(event, dict):
                    lines.append(event)
    return lines


def start_router(*args: str, env: dict[str, str], log_path: Path) -> RouterProcess:
    """`sllm router serve --port 0 ARGS` with `env` (SLLM_* settings); its JSON log goes
    to `log_path` (appended: a restarted router keeps its predecessor's lines), where its
    "router.listening" line tells the port."""
    skip = len(_log_lines(log_path)) if log_path.exists() else 0
    with log_path.open("ab") as log:
        process = children.popen(
            [sys.executable, "-m", "sllm", "router", "serve", "--port", "0", *args],
            env={
                **os.environ,
                "SLLM_LOG__FORMAT": "json",
                "SLLM_LOG__LEVEL": "info",
                # No HTTP door unless asked: routers started side by side would share a port.
                "SLLM_ROUTER__HTTP_PORT": "0",
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        listening = [
            line for line in _log_lines(log_path)[skip:] if line.get("event") == "router.listening"
        ]
        if listening:
            return RouterProcess(process, str(listening[0]["target"]), log_path)
        time.sleep(0.1)
    terminate(process)
    raise RuntimeError(
        f"the router did not start (exit status {process.poll()}):\n{log_path.read_text()}"
    )


def terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
