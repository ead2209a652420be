"""An edge worker in a child process (`sllm edge serve`), for tests, benchmarks and tools.

The worker picks a free port (`--port 0`) and reports it in its "edge.listening" JSON log
line, which is how the parent learns it. Its output is read continuously, so a chatty
worker never blocks on a full pipe, and kept for inspection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sllm import children

START_TIMEOUT_S = 120.0


@dataclass
class EdgeWorkerProcess:
    process: subprocess.Popen[str]
    port: int
    metrics_port: int
    # Every JSON log line the worker wrote so far, and its raw output.
    log_lines: list[dict[str, Any]] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.log_lines if line.get("event") == name]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _read_output(
    process: subprocess.Popen[str], lines: list[dict[str, Any]], output: list[str]
) -> None:
    assert process.stdout is not None
    for raw in process.stdout:
        output.append(raw)
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            lines.append(parsed)


def start_edge_worker(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> EdgeWorkerProcess:
    """`sllm edge serve --port 0 --metrics-port 0 ARGS` with `SLLM_*` overrides in `env`;
    returns once it listens (raises, with its output, if it exits or hangs first)."""
    process = children.popen(
        [
            sys.executable,
            "-m",
            "sllm",
            "edge",
            "serve",
            "--port",
            "0",
            "--metrics-port",
            "0",
            *args,
        ],
        cwd=cwd,
        env={**os.environ, "SLLM_LOG__FORMAT": "json", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[dict[str, Any]] = []
    output: list[str] = []
    threading.Thread(target=_read_output, args=(process, lines, output), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        listening = [line for line in lines if line.get("event") == "edge.listening"]
        if listening:
            ready = listening[0]
            return EdgeWorkerProcess(
                process, int(ready["port"]), int(ready["metrics_port"]), lines, output
            )
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError("the edge worker did not start:\n" + "".join(output))
