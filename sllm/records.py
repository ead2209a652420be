"""Plain records the router builds and the client (sllm/client) reads back from the wire,
defined once for both: a decision's budget view, and a streamed answer's events."""

from __future__ import annotations

from dataclasses import dataclass

from sllm.enums import BudgetSource, Tier


@dataclass(frozen=True, slots=True)
class BudgetView:
    """The latency budget the router worked with, where it came from, and its estimates."""

    latency_budget_ms: float
    latency_budget_source: BudgetSource
    cost_ceiling_usd: float | None
    # The tenant's remaining spend in the current window, when the router has budgets.
    tenant_budget_remaining_usd: float | None
    est_edge_direct_ms: float
    est_edge_step_by_step_ms: float
    est_cloud_ms: float
    est_cloud_cost_usd: float


@dataclass(frozen=True, slots=True)
class Delta:
    """Text to show, from the edge or the cloud."""

    text: str
    tier: Tier


@dataclass(frozen=True, slots=True)
class Reset:
    """Discard the text streamed so far: another tier answers instead (the router
    escalated after edge text was sent, or the edge failed mid-answer)."""

    reason: str
