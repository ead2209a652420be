"""The three processes of the live loop: edge worker, replay cloud and router."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.replay.process import start_replay_cloud
from edge_worker.process import start_edge_worker
from router.process import RouterProcess, start_router

# A cloud like a hosted GPT-4-class model: ~0.6 s to the first token, ~40 tokens/s.
REPLAY_LATENCY = ("--ttft-ms", "600", "--ms-per-token", "25", "--jitter-ms", "300", "--seed", "0")


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
            "--edge",
            edge.target,
            "--policy",
            str(policy_dir),
            env={
                "SLLM_CLOUD__BASE_URL": cloud.base_url,
                "SLLM_CLOUD__MODEL": "replay",
                "SLLM_CLOUD__API_KEY": "unused",
                # GPT-4o's list prices (USD per million tokens), so that costs compare.
                "SLLM_CLOUD__PRICE_INPUT_PER_MTOK": "2.5",
                "SLLM_CLOUD__PRICE_OUTPUT_PER_MTOK": "10",
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
        stack.callback(router.stop)
        yield LiveSystem(edge.target, cloud.base_url, router, db)
