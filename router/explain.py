"""The decision's reason in one plain sentence, from the facts the policy used."""

from __future__ import annotations

from router.policy import Plan, Verdict
from router.record import Route

_TIER = {"EDGE": "the edge", "CLOUD": "the cloud"}


def reason(
    route: Route,
    plan: Plan,
    verdict: Verdict | None,
    *,
    edge_error: str = "",
    cloud_error: str = "",
) -> str:
    parts = [f"{plan.why}, so {_TIER[plan.first]} went first"]
    if plan.mode_why and route != "CLOUD":
        mode = "step by step" if plan.reasoning_mode == "STEP_BY_STEP" else "directly"
        parts.append(f"the edge answered {mode}: {plan.mode_why}")
    if plan.first == "EDGE" and plan.cloud_blocker is None and verdict is None and edge_error:
        parts.append(f"the edge failed ({edge_error}), so the cloud answered")
    if verdict is not None:
        parts.append(verdict.why)
    if route == "EDGE_FALLBACK":
        # Failed during this query's call, or known down (its breaker open) before it.
        failed = f"the cloud failed ({cloud_error})" if cloud_error else "the cloud is down"
        parts.append(f"{failed}, so the edge answer is returned degraded")
    return f"{route}: " + "; ".join(parts) + "."
