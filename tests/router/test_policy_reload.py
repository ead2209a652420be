"""The router picks up a changed policy directory while serving: no request fails or mixes
two policies, a broken policy is refused while the active one keeps serving, and the
operator can roll back to the policy before."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import grpc
import pytest

from sllm import children
from sllm.v1 import router_pb2
from tests.fixtures.router import RouterFactory
from tests.router.requests import ask

pytestmark = pytest.mark.slow


def _rewrite(policy_dir: Path, **changes: object) -> None:
    """Replaces policy.json atomically, as `sllm learn` should publish a policy."""
    manifest = json.loads((policy_dir / "policy.json").read_text()) | changes
    tmp = policy_dir / "policy.json.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, policy_dir / "policy.json")


async def _version(router_stub: object) -> str:
    info = await router_stub.GetPolicy(router_pb2.GetPolicyRequest())  # type: ignore[attr-defined]
    return str(info.version)


async def test_a_new_policy_is_swapped_in_under_load_and_a_broken_one_refused(
    real_router: RouterFactory,
) -> None:
    router = await real_router(policy_reload_interval_s=0.1, health_interval_s=0.05)
    old = await _version(router.stub)
    with pytest.raises(grpc.aio.AioRpcError) as nothing_before:
        await router.stub.RollbackPolicy(router_pb2.RollbackPolicyRequest())
    assert nothing_before.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    async def one(i: int) -> router_pb2.RouteResponse:
        # local_only: the edge alone answers, so a failure could only come from the swap.
        return await router.stub.Generate(
            ask(f"Say the number {i}.", max_tokens=1, local_only=True)
        )

    # Eight in flight at most: the edge worker queues that many without refusing any.
    in_flight = [asyncio.create_task(one(i)) for i in range(4)]
    _rewrite(router.policy_dir, version="swapped", cascade_threshold=0.5)
    in_flight += [asyncio.create_task(one(i)) for i in range(4, 8)]
    for _ in range(100):
        if await _version(router.stub) == "swapped":
            break
        await asyncio.sleep(0.05)
    responses = await asyncio.gather(*in_flight)
    after = [await one(i) for i in range(8, 10)]
    assert {r.decision.policy_version for r in responses} <= {old, "swapped"}
    for response in responses + after:
        # Each request used one policy throughout: its thresholds match its version.
        swapped = response.decision.policy_version == "swapped"
        assert response.decision.cascade_threshold == (0.5 if swapped else 0.0)
    assert {r.decision.policy_version for r in after} == {"swapped"}

    (router.policy_dir / "policy.json").write_text("{not json")
    await asyncio.sleep(0.5)
    assert await _version(router.stub) == "swapped"
    still = await one(99)
    assert still.decision.policy_version == "swapped"

    # The operator's way back: `sllm router rollback` returns to the policy before the swap.
    # (Run without blocking: this router serves on the test's own event loop.)
    process = await children.create_subprocess_exec(
        sys.executable,
        *("-m", "sllm", "router", "rollback", "--target", router.target),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().startswith(f"active policy {old} ")
    assert await _version(router.stub) == old
    back = await one(100)
    assert (back.decision.policy_version, back.decision.cascade_threshold) == (old, 0.0)
