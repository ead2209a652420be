"""The three processes of the live loop: edge worker, replay cloud and router."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.replay.process import start_replay_cloud
from edge_worker.process import start_edge_worker
from sllm import children

# A cloud like a hosted GPT-4-class model: ~0.6 s to the first token, ~40 tokens/s.
REPLAY_LATENCY = ("--ttft-ms", "600", "--ms-per-token", "25", "--jitter-ms", "300", "--seed", "0")
ROUTER_START_TIMEOUT_S = 90.0


@dataclass
class RouterProcess:
    process: subprocess.Popen[bytes]
    target: str


def _listening_target(log_path: Path) -> str | None:
    with log_path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == "router.listening":
                    return str(event["target"])
    return None


def start_router(*args: str, env: dict[str, str], log_path: Path) -> RouterProcess:
    """`sllm router serve --port 0 ARGS` with `env` (SLLM_* settings); its JSON log goes
    to `log_path`, where its "router.listening" line tells the port."""
    with log_path.open("wb") as log:
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
    deadline = time.monotonic() + ROUTER_START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        target = _listening_target(log_path)
        if target is not None:
            return RouterProcess(process, target)
        time.sleep(0.1)
    _terminate(process)
    raise RuntimeError(
        f"the router did not start (exit status {process.poll()}):\n{log_path.read_text()}"
    )


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class LiveSystem:
    edge_target: str
    cloud_url: str
    router: RouterProcess
    outcome_db: Path


@contextlib.contextmanager
def live_system(scratch: Path, policy_dir: Path) -> Iterator[LiveSystem]:
    """Edge worker (bundled SmolLM2), replay cloud and a router over them, logging prompts
    to an outcome log in `scratch` and watching `policy_dir` for new policies; all three
    are stopped on exit."""
    with contextlib.ExitStack() as stack:
        replay_log = stack.enter_context((scratch / "replay.log").open("w", encoding="utf-8"))
        # Both load for several seconds (a model, every data set): side by side; the
        # pool's exit waits for both, so one that started is stopped if the other failed.
        with ThreadPoolExecutor(2) as pool:
            starting_edge = pool.submit(start_edge_worker)
            starting_cloud = pool.submit(start_replay_cloud, *REPLAY_LATENCY, log=replay_log)
        for started in (starting_edge, starting_cloud):
            if started.exception() is None:
                stack.callback(started.result().stop)
        edge, cloud = starting_edge.result(), starting_cloud.result()
        db = scratch / "outcomes.sqlite3"
        router = start_router(
            "--edge", edge.target, "--policy", str(policy_dir),
            env={
                "SLLM_CLOUD__BASE_URL": cloud.base_url,
                "SLLM_CLOUD__MODEL": "replay",
                "SLLM_CLOUD__API_KEY": "unused",
                "SLLM_ROUTER__OUTCOME_DB": str(db),
                # The learner reads the prompts; by default only their hash is logged.
                "SLLM_ROUTER__STORE_PROMPTS": "true",
                "SLLM_ROUTER__METRICS_PORT": "0",
                # DIRECT answers only: SmolLM2 gains nothing from reasoning first
                # (../shared/data/README.md) and a step-by-step answer costs ~10x the time.
                "SLLM_ROUTER__STEP_BY_STEP_FORMATS": "[]",
                "SLLM_ROUTER__POLICY_RELOAD_INTERVAL_S": "1",
            },
            log_path=scratch / "router.log",
        )
        stack.callback(_terminate, router.process)
        yield LiveSystem(edge.target, cloud.base_url, router, db)
