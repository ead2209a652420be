"""A router in a child process over a scripted edge served by the test (the edge answers
at once; the cloud is a closed port), logging to a SQLite file the test reads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from router.process import RouterProcess, start_router
from tests.fixtures.router import CLOSED_PORT_URL, policy_with_thresholds


async def start_router_child(
    edge_target: str, tmp_path: Path, db: Path, **settings: str
) -> RouterProcess:
    """`settings`: SLLM_ROUTER__* values by field name. Started from a thread: the router
    asks the edge, which this event loop serves, for its speed while it starts."""
    policy = tmp_path / "policy"
    if not policy.exists():
        # Every query to the edge, whatever the scorer thinks of it.
        policy_with_thresholds(policy, pre=0.0, cascade=0.0)
    env = {
        "SLLM_CLOUD__BASE_URL": CLOSED_PORT_URL,
        "SLLM_CLOUD__MAX_ATTEMPTS": "1",
        "SLLM_ROUTER__OUTCOME_DB": str(db),
        "SLLM_ROUTER__METRICS_PORT": "0",
        **{f"SLLM_ROUTER__{name.upper()}": value for name, value in settings.items()},
    }
    return await asyncio.to_thread(
        start_router,
        "--edge",
        edge_target,
        "--policy",
        str(policy),
        env=env,
        log_path=tmp_path / "router.log",
    )
