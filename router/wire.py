"""Plain results to `sllm.v1` messages, for the servicer."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from router.cascade import Event
from router.record import DecisionRecord, RouteResult
from router.scorer import Policy
from router.stats import LiveStats
from sllm.enums import REASONING_MODES, ROUTES, TIERS
from sllm.records import Delta, Reset
from sllm.v1 import common_pb2, router_pb2


def _decision(record: DecisionRecord, result: RouteResult) -> router_pb2.DecisionRecord:
    budget = record.budget
    message = router_pb2.DecisionRecord(
        difficulty=record.difficulty,
        p_edge_ok=record.p_edge_ok,
        pre_generation_threshold=record.pre_generation_threshold,
        cascade_threshold=record.cascade_threshold,
        budget=router_pb2.BudgetView(
            latency_budget_ms=budget.latency_budget_ms,
            latency_budget_source=budget.latency_budget_source,
            cost_ceiling_usd=budget.cost_ceiling_usd,
            tenant_budget_remaining_usd=budget.tenant_budget_remaining_usd,
            est_edge_direct_ms=budget.est_edge_direct_ms,
            est_edge_step_by_step_ms=budget.est_edge_step_by_step_ms,
            est_cloud_ms=budget.est_cloud_ms,
            est_cloud_cost_usd=budget.est_cloud_cost_usd,
        ),
        edge_max_tokens=record.edge_max_tokens,
        reason=record.reason,
        policy_version=record.policy_version,
        timings=router_pb2.DecisionTimings(
            decision_ms=record.timings.decision_ms,
            edge_ms=record.timings.edge_ms,
            cloud_ms=record.timings.cloud_ms,
            total_ms=record.timings.total_ms,
        ),
        cost_usd=record.cost_usd,
        low_confidence=record.low_confidence,
        cloud_error=record.cloud_error,
        edge_error=record.edge_error,
        pii_kinds=record.pii_kinds,
        trace_id=record.trace_id,
    )
    if record.p_edge_ok_after is not None:
        message.p_edge_ok_after = record.p_edge_ok_after
    if result.edge is not None:
        message.edge_confidence.CopyFrom(result.edge.summary.confidence)
        message.edge_exit_reason = result.edge.summary.exit_reason
    return message


def response(result: RouteResult) -> router_pb2.RouteResponse:
    mode = (
        REASONING_MODES.numbers[result.reasoning_mode]
        if result.reasoning_mode
        else common_pb2.REASONING_MODE_UNSPECIFIED
    )
    return router_pb2.RouteResponse(
        request_id=result.request_id,
        text=result.text,
        final_answer=result.final_answer,
        route=ROUTES.numbers[result.route],
        reasoning_mode=mode,
        degraded=result.degraded,
        decision=_decision(result.decision, result),
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )


def event(item: Event) -> router_pb2.RouteEvent:
    if isinstance(item, Delta):
        delta = router_pb2.StreamDelta(text=item.text, tier=TIERS.numbers[item.tier])
        return router_pb2.RouteEvent(delta=delta)
    if isinstance(item, Reset):
        return router_pb2.RouteEvent(reset=router_pb2.StreamReset(reason=item.reason))
    return router_pb2.RouteEvent(final=response(item))


def policy_info(policy: Policy, stats: LiveStats) -> router_pb2.PolicyInfo:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(policy.loaded_at * 1e9))
    return router_pb2.PolicyInfo(
        version=policy.version,
        pre_generation_threshold=policy.pre_generation_threshold,
        cascade_threshold=policy.cascade_threshold,
        scorer=policy.scorer_description,
        loaded_at=stamp,
        stats=router_pb2.RouteStats(
            requests=stats.requests,
            route_share=stats.route_share(),
            escalation_rate=stats.escalation_rate,
            deadline_misses=stats.deadline_misses,
        ),
    )
