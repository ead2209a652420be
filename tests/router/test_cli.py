"""The main job through the `sllm` command: `sllm up` starts the edge worker (in the
router's process, or its own with --edge-process), the cloud stand-in and the router with
its HTTP door, one line each; `sllm ask` prints the answer and the decision record (also
streaming); the `openai` client gets answers from the HTTP door; the router's metrics are
served; SIGINT (Ctrl-C) stops all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from sllm import children
from sllm.settings import RouterSettings
from tests.fixtures.cloud import free_port

pytestmark = pytest.mark.slow


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def ports() -> dict[str, int]:
    names = ("edge", "edge_metrics", "cloud", "router", "metrics", "http")
    return {name: free_port() for name in names}


@pytest.fixture(params=[[], ["--edge-process"]], ids=["in-process", "edge-process"])
def up(
    request: pytest.FixtureRequest, ports: dict[str, int], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    env = {
        **os.environ,
        "SLLM_EDGE__PORT": str(ports["edge"]),
        "SLLM_EDGE__METRICS_PORT": str(ports["edge_metrics"]),
        "SLLM_CLOUD__STANDIN_PORT": str(ports["cloud"]),
        "SLLM_CLOUD__BASE_URL": f"http://127.0.0.1:{ports['cloud']}/v1",
        "SLLM_ROUTER__PORT": str(ports["router"]),
        "SLLM_ROUTER__METRICS_PORT": str(ports["metrics"]),
        "SLLM_ROUTER__HTTP_PORT": str(ports["http"]),
        "SLLM_ROUTER__OUTCOME_DB": str(tmp_path / "outcomes.sqlite3"),
    }
    process = children.popen(
        [sys.executable, "-m", "sllm", "up", *request.param],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("ready:"):
            break
    try:
        yield process, lines
    finally:
        # SIGINT first: `sllm up` stops its children itself, as it does on Ctrl-C.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _sllm(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "sllm", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_up_ask_and_ctrl_c(
    up: tuple[subprocess.Popen[str], list[str]], ports: dict[str, int]
) -> None:
    process, lines = up
    assert [line.split()[0] for line in lines] == ["edge", "cloud", "router", "http", "ready:"]
    in_process = "in the router's process" in lines[0]
    assert in_process or f"127.0.0.1:{ports['edge']}" in lines[0]
    assert in_process != _listening(ports["edge"])
    assert f"http://127.0.0.1:{ports['cloud']}/v1" in lines[1]
    assert f"127.0.0.1:{ports['router']}" in lines[2]
    assert f"http://127.0.0.1:{ports['http']}/v1" in lines[3]

    target = f"127.0.0.1:{ports['router']}"
    answer = _sllm("ask", "--target", target, "What is the capital of France?")
    for label in ("route", "why", "p_edge_ok", "budget", "timings", "cost"):
        assert f"\n{label} " in answer
    streamed = _sllm("ask", "--target", target, "--stream", "--budget-ms", "20000", "Say hi.")
    # The budget the router plans with: the request's, less the margin kept for the reply.
    assert f"{20000 - RouterSettings().reply_margin_ms:.0f} ms (request)" in streamed
    app = openai.OpenAI(base_url=f"http://127.0.0.1:{ports['http']}/v1", api_key="unused")
    reply = app.chat.completions.create(
        model="sllm-auto", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
    )
    assert reply.choices[0].message.content

    with urllib.request.urlopen(f"http://127.0.0.1:{ports['metrics']}/metrics") as reply:
        metrics = reply.read().decode()
    assert "sllm_router_requests_total{" in metrics
    # One set of metrics for both doors.
    assert "sllm_router_decision_seconds_count 3.0" in metrics
    # The edge's metrics are the router's when it runs inside it.
    assert ("\nsllm_edge_queue_depth 0.0\n" in metrics) == in_process

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    deadline = time.monotonic() + 20
    while any(_listening(ports[name]) for name in ("edge", "cloud", "router", "http")):
        assert time.monotonic() < deadline, "a component still listens after Ctrl-C"
        time.sleep(0.2)
