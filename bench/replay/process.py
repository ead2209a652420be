"""Starts `sllm bench replay-cloud` in a child process, for benchmarks and tests."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO

from sllm import children

_READY = re.compile(r"ready at (?P<url>http://\S+)")


class ReplayCloudFailed(RuntimeError):
    """The replay endpoint exited, or said nothing, before it was ready."""


@dataclass
class ReplayCloudProcess:
    process: subprocess.Popen[str]
    base_url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _forward_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def start_replay_cloud(
    *args: str, log: IO[str] | None = None, timeout_s: float = 60.0
) -> ReplayCloudProcess:
    """`sllm bench replay-cloud --port 0 ARGS`, once it listens; its JSON log lines (one
    `replay.answer` per request) go to `log` (default: discarded)."""
    process = children.popen(
        [sys.executable, "-m", "sllm", "bench", "replay-cloud", "--port", "0", *args],
        env={**os.environ, "SLLM_LOG__FORMAT": "json"},
        stdout=subprocess.PIPE,
        stderr=log if log is not None else subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_forward_lines, args=(process.stdout, lines), daemon=True).start()
    said: list[str] = []
    try:
        while (line := lines.get(timeout=timeout_s)) is not None:
            said.append(line)
            if ready := _READY.search(line):
                return ReplayCloudProcess(process, ready["url"])
    except queue.Empty:
        pass
    ReplayCloudProcess(process, "").stop()
    raise ReplayCloudFailed(
        f"replay cloud not ready after {timeout_s:.0f} s (exit status {process.poll()}); "
        f"it printed: {''.join(said)!r}"
    )
