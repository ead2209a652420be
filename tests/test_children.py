"""Children die with their parent: a parent Python process starts a real child through one
of sllm's starting functions and prints its pid; the test kills the parent (SIGKILL, or a
segfault of its own) and watches the child go.

Linux only: elsewhere sllm promises nothing beyond its owners' stop paths (sllm/children.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sllm import children
from tests.fixtures.cloud import free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

ROOT = Path(__file__).resolve().parents[1]
GONE_WITHIN_S = 5.0
SLEEPER = "children.popen([sys.executable, '-c', 'import time; time.sleep(600)'])"

# Each prints the pid of a child it started; the parent then sleeps until killed.
STARTERS = {
    "generic helper": f"from sllm import children; pid = {SLEEPER}.pid",
    "generic helper from a thread that has ended": (
        "import threading\n"
        "from sllm import children\n"
        "started = []\n"
        f"thread = threading.Thread(target=lambda: started.append({SLEEPER}))\n"
        "thread.start(); thread.join()\n"
        "pid = started[0].pid"
    ),
    # As `sllm up` starts it: from asyncio.to_thread, whose thread asyncio.run ends.
    "cloud stand-in via asyncio.to_thread": (
        "import asyncio, subprocess, threading\n"
        "from cloud_adapter import standin\n"
        "server = asyncio.run(asyncio.to_thread(\n"
        "    standin.start, port={port}, n_threads=1, output=subprocess.DEVNULL))\n"
        "assert not [t for t in threading.enumerate() if t.name.startswith('asyncio')]\n"
        "pid = server.process.pid"
    ),
    "replay cloud": (
        "from bench.replay.process import start_replay_cloud\n"
        "pid = start_replay_cloud().process.pid"
    ),
    "edge worker": (
        "from edge_worker.process import start_edge_worker\npid = start_edge_worker().process.pid"
    ),
}


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (an orphan's new parent may never reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _seconds_until_gone(pid: int) -> float:
    started = time.monotonic()
    while _alive(pid) and time.monotonic() - started < GONE_WITHIN_S:
        time.sleep(0.01)
    return time.monotonic() - started


@contextmanager
def _parent(
    code: str, tmp_path: Path, then: str = "time.sleep(600)"
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A parent process that runs `code` (which sets `pid`), prints the pid, then runs
    `then`; yields it and the child's pid, and kills it on the way out."""
    stderr = tmp_path / "parent.stderr"
    script = f"import sys, time\n{code}\nprint(pid, flush=True)\n{then}\n"
    with stderr.open("w") as errors:
        process = children.popen(
            [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=errors,
            text=True,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip().isdigit(), f"parent printed {line!r}, stderr:\n{stderr.read_text()}"
        yield process, int(line)
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("starter", sorted(STARTERS))
def test_a_child_dies_with_its_sigkilled_parent(starter: str, tmp_path: Path) -> None:
    port = free_port()
    with _parent(STARTERS[starter].format(port=port), tmp_path) as (parent, child):
        time.sleep(0.5)
        assert _alive(child), "the child died before its parent"
        if "stand-in" in starter:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5):
                pass
        parent.kill()
        parent.wait()
        seconds = _seconds_until_gone(child)
    print(f"{starter}: child gone {seconds * 1000:.0f} ms after its parent's SIGKILL")
    assert not _alive(child), f"child {child} outlived its parent by {GONE_WITHIN_S} s"


def test_a_child_dies_with_its_parent_that_segfaults(tmp_path: Path) -> None:
    crash = "import ctypes; time.sleep(0.5); ctypes.string_at(0)"
    with _parent(STARTERS["generic helper"], tmp_path, then=crash) as (parent, child):
        assert _alive(child)
        assert parent.wait(timeout=10) == -signal.SIGSEGV
        seconds = _seconds_until_gone(child)
    print(f"segfault: child gone {seconds * 1000:.0f} ms after its parent's crash")
    assert not _alive(child), f"child {child} outlived its parent by {GONE_WITHIN_S} s"


def test_run_returns_what_the_child_printed_and_its_status() -> None:
    code = "import sys; print(sys.stdin.read().upper()); sys.exit(3)"
    done = children.run([sys.executable, "-c", code], input="ping", timeout=60)
    assert (done.returncode, done.stdout.strip()) == (3, "PING")


def test_run_kills_a_child_that_outlives_its_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    with pytest.raises(subprocess.TimeoutExpired):
        children.run([sys.executable, "-c", code], timeout=5)
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists(), "the child outlived run()'s timeout"
