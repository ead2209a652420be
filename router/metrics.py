"""Prometheus metrics of the router (all prefixed `sllm_router_`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "sllm_router_requests_total", "Routed queries by route and reasoning mode", ["route", "mode"]
)
FAILURES = Counter(
    "sllm_router_failures_total", "Queries that got no answer, by gRPC status", ["code"]
)
DEGRADED = Counter(
    "sllm_router_degraded_total",
    "Edge answers returned where the policy wanted the cloud (EDGE_FALLBACK, degraded), by "
    "cause: cloud_failed (the call failed) or cloud_down (its breaker was open before it)",
    ["cause"],
)
ESCALATIONS = Counter(
    "sllm_router_escalations_total", "Edge answers escalated to the cloud after the edge ran"
)
DEADLINE_MISSES = Counter(
    "sllm_router_deadline_misses_total", "Queries answered after their latency budget"
)
COST = Counter("sllm_router_cost_usd_total", "Cloud spend in US dollars", ["tenant"])
DECISION_SECONDS = Histogram(
    "sllm_router_decision_seconds",
    "Time to decide (features, scorer, budget, policy) before any tier runs",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)
REQUEST_SECONDS = Histogram(
    "sllm_router_request_seconds",
    "Total time per routed query",
    ["route"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
P_EDGE_OK = Histogram(
    "sllm_router_p_edge_ok",
    "Pre-generation p_edge_ok of routed queries",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
)
OUTCOME_ROWS_DROPPED = Counter(
    "sllm_router_outcome_rows_dropped_total",
    "Outcome-log rows lost, by reason: queue_full (the writer behind by "
    "router.outcome_queue_size rows) or write_failed (the store refused the row)",
    ["reason"],
)
OUTCOME_ACKS_BEFORE_COMMIT = Counter(
    "sllm_router_outcome_acks_before_commit_total",
    "Requests answered before their outcome-log row was committed (the store slower than "
    "router.outcome_commit_wait_s): a router crash then would lose the row",
)
TIER_AVAILABLE = Gauge("sllm_router_tier_available", "1 when the tier can take queries", ["tier"])
POLICY_LOADS = Counter("sllm_router_policy_loads_total", "Policy loads by result", ["result"])
SHADOW_CALLS = Counter(
    "sllm_router_shadow_calls_total",
    "Shadow exploration of edge answers by outcome: labelled, undecided (the judge could "
    "not tell), failed, or not made (busy: too many in flight; over_budget: the tenant's "
    "budget was held by its other calls)",
    ["outcome"],
)
RELEARNS = Counter("sllm_router_relearns_total", "Online re-learning runs by result", ["result"])
REFUSALS = Counter(
    "sllm_router_refusals_total",
    "Requests refused at a door (gRPC, HTTP) by status: UNAUTHENTICATED (no valid token) or "
    "PERMISSION_DENIED (a token that may not do that, or claims another tenant)",
    ["code"],
)
