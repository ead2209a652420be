"""The spans of one routed request, so that its trace reads like its decision record.

    sllm.route                the whole request (route, reason, request_id)
    ├── sllm.decide           scorer, budget and policy
    ├── sllm.edge             the edge call (exit reason, tokens, confidence, queue time)
    │   ├── sllm.edge.prefill } placed from the worker's own timings, back from the moment
    │   └── sllm.edge.decode  } its summary arrived: whichever process the worker runs in
    ├── sllm.cloud            the cloud call (cloud_adapter: attempts, retries, breaker)
    └── sllm.outcome_log      the outcome row written and, within the wait, committed

Spans are parented explicitly rather than through the current context: the request runs
in async generators, whose context a consumer shares between its steps.
"""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.context import Context

from router.edge_client import EdgeAnswer
from router.record import DecisionRecord, RouteResult
from router.signals import EdgeSignals

ROUTE = "sllm.route"
DECIDE = "sllm.decide"
EDGE = "sllm.edge"
OUTCOME_LOG = "sllm.outcome_log"


def context_of(span: trace.Span) -> Context | None:
    """What a child of `span` is started in; None (a root, or nothing) when tracing is off."""
    if not span.get_span_context().is_valid:
        return None
    return trace.set_span_in_context(span)


def decided(span: trace.Span, record: DecisionRecord, first: str, mode: str) -> None:
    if span.is_recording():
        span.set_attributes(
            {
                "sllm.p_edge_ok": record.p_edge_ok,
                "sllm.pre_generation_threshold": record.pre_generation_threshold,
                "sllm.plan.first_tier": first,
                "sllm.plan.reasoning_mode": mode,
                "sllm.plan.edge_max_tokens": record.edge_max_tokens,
                "sllm.budget.latency_ms": record.budget.latency_budget_ms,
                "sllm.budget.source": record.budget.latency_budget_source,
                "sllm.policy_version": record.policy_version,
            }
        )


def routed(span: trace.Span, result: RouteResult) -> None:
    if span.is_recording():
        decision = result.decision
        span.set_attributes(
            {
                "sllm.request_id": result.request_id,
                "sllm.route": result.route,
                "sllm.reason": decision.reason,
                "sllm.degraded": result.degraded,
                "sllm.cost_usd": decision.cost_usd,
                "sllm.p_edge_ok_after": (
                    decision.p_edge_ok_after if decision.p_edge_ok_after is not None else -1.0
                ),
                "sllm.low_confidence": decision.low_confidence,
            }
        )


def failed(span: trace.Span, error: BaseException) -> None:
    if span.is_recording():
        span.set_status(trace.StatusCode.ERROR, str(error))
        span.set_attribute("sllm.error", type(error).__name__)


def edge_answered(tracer: trace.Tracer, span: trace.Span, answer: EdgeAnswer) -> None:
    """The edge call's outcome on its span, and the worker's three phases as children."""
    if not span.is_recording():
        return
    summary = answer.summary
    signals = EdgeSignals.from_summary(summary)
    span.set_attributes(
        {
            "sllm.edge.exit_reason": signals.exit_reason,
            "sllm.edge.exit_detail": summary.exit_detail,
            "sllm.edge.prompt_tokens": summary.prompt_tokens,
            "sllm.edge.completion_tokens": summary.completion_tokens,
            "sllm.edge.confidence": signals.confidence_score,
            "sllm.edge.mean_logprob": signals.mean_logprob,
            "sllm.edge.answer_found": signals.answer_found,
            "sllm.edge.model": summary.model,
            # An attribute, not a span: each span costs the request about 10 us.
            "sllm.edge.queue_ms": summary.timings.queue_ms,
        }
    )
    timings = summary.timings
    parent = trace.set_span_in_context(span)
    end_ns = time.time_ns()
    phases: tuple[tuple[str, float, dict[str, int]], ...] = (
        ("sllm.edge.decode", timings.decode_ms, {"sllm.edge.tokens": summary.completion_tokens}),
        ("sllm.edge.prefill", timings.prefill_ms, {"sllm.edge.tokens": summary.prompt_tokens}),
    )
    for name, ms, attributes in phases:
        start_ns = end_ns - int(ms * 1_000_000)
        tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes).end(
            end_time=end_ns
        )
        end_ns = start_ns
