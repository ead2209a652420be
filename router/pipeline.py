"""The router as a plain class: validate'd query in, events and a `RouteResult` out.

The gRPC servicer is a thin translation over this; tests and the benchmark can drive it
without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import AsyncGenerator, Callable

import structlog
from opentelemetry.context import Context

from cloud_adapter import CloudClient
from router import metrics, spans
from router import policy as decide
from router.active_policy import ActivePolicy
from router.auth.access import Access
from router.budget import latency_budget
from router.cascade import Cascade, Event, RouteFailed
from router.edge_client import Edge, EdgeAnswer
from router.estimators import (
    CloudLatency,
    EdgeLatency,
    RouterOverhead,
    estimate_prompt_tokens,
)
from router.outcomes import LoggedRequest, OutcomeLog, Written
from router.policy import NoRoute, Situation
from router.privacy import PiiDetector, masked
from router.query import Query
from router.record import DecisionRecord, RouteResult
from router.shadow import ShadowExplorer
from router.signals import EdgeSignals
from router.spend import Hold
from router.stats import LiveStats, RecentDecision
from sllm.records import BudgetView
from sllm.settings import RouterSettings
from sllm.tracing import Tracing, current_context

log = structlog.get_logger("router")

__all__ = ["Event", "RouteFailed", "Router"]


def _own_ms(cascade: Cascade) -> float:
    """The request's time so far that was not the tiers' own work: the router's. A tier
    that answered counts its own time (so reaching it is the router's); one that failed,
    all the time it was waited for (a failure is no overhead to plan for)."""
    timings = cascade.record.timings
    edge_ms, cloud_ms = timings.edge_ms, timings.cloud_ms
    if cascade.edge_answer is not None:
        worker = cascade.edge_answer.summary.timings
        edge_ms = worker.queue_ms + worker.prefill_ms + worker.decode_ms
    if cascade.cloud_result is not None:
        cloud_ms = cascade.cloud_result.latency_ms
    return (time.monotonic() - cascade.started) * 1000.0 - edge_ms - cloud_ms


class Router:
    def __init__(
        self,
        settings: RouterSettings,
        *,
        edge: Edge,
        cloud: CloudClient | None,
        policies: ActivePolicy,
        outcomes: OutcomeLog,
        edge_latency: EdgeLatency,
        cloud_latency: CloudLatency,
        tracing: Tracing | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        """`tracing`: where this router's spans go (sllm/tracing.py); None: nowhere.
        `draw`: uniform in [0, 1), for the mode exploration's draws (a test fixes them)."""
        self.settings = settings
        self.draw = draw
        self.tracing = tracing or Tracing.off()
        self.edge = edge
        self.cloud = cloud
        self.policies = policies
        self.outcomes = outcomes
        self.edge_latency = edge_latency
        self.cloud_latency = cloud_latency
        self.overhead = RouterOverhead()
        # In this process, or shared by a fleet when the outcome store is PostgreSQL.
        self.spend = outcomes.store.tenant_spend(
            budget_usd=settings.tenant_budget_usd, window_s=settings.tenant_budget_window_s
        )
        self.stats = LiveStats()
        # Who may call the doors (router/auth), and the personal data kept off the cloud.
        self.access = Access.from_settings(settings)
        self.pii = PiiDetector(settings.pii.patterns)
        self.shadow = ShadowExplorer(settings, cloud=cloud, outcomes=outcomes, spend=self.spend)
        # Kept current by `watch`; a failed edge call also clears it at once.
        self.edge_available = True

    @property
    def cloud_available(self) -> bool:
        return self.cloud is not None and self.cloud.breaker_state != "open"

    def _explore_mode(self) -> bool:
        rate = self.settings.mode_exploration
        return rate > 0 and self.draw() < rate

    def _cloud_cost(self, query: Query) -> float:
        """The cloud's estimated cost for the query; 0 without a cloud."""
        if self.cloud is None:
            return 0.0
        return self.cloud.estimate_cost(estimate_prompt_tokens(query.messages), query.max_tokens)

    def decide(
        self,
        query: Query,
        *,
        grpc_remaining_s: float | None = None,
        request_id: str = "",
        hold: Hold | None = None,
    ) -> Cascade:
        """Features, scorer, budget and policy: everything before a tier runs (no I/O).

        `request_id`: one the door already gave out (an HTTP stream's chunks carry it from
        the first); empty: a new one. `hold`: what the tenant's budget allowed this query;
        None: the spend as this process last knew it."""
        started = time.monotonic()
        request_id = request_id or uuid.uuid4().hex
        policy = self.policies.current
        budget_ms, source = latency_budget(
            query.latency_budget_ms,
            grpc_remaining_s,
            self.settings.default_latency_budget_ms,
            reply_margin_ms=self.settings.reply_margin_ms,
        )
        p_edge_ok, p_edge_ok_step_by_step = policy.p_edge_ok_by_mode(query.text)
        pii_kinds = self.pii.kinds(m.content for m in query.messages)
        edge_only = self.settings.pii.policy_for(query.tenant) == "edge_only"
        prompt_tokens = estimate_prompt_tokens(query.messages)
        edge = self.edge_latency.estimate(prompt_tokens)
        est_cloud_ms = self.cloud_latency.estimate_ms(query.max_tokens)
        cloud_cost = self._cloud_cost(query)
        situation = decide.Situation(
            p_edge_ok=p_edge_ok,
            pre_generation_threshold=policy.pre_generation_threshold,
            remaining_ms=budget_ms,
            edge=edge,
            est_cloud_ms=est_cloud_ms,
            est_cloud_cost_usd=cloud_cost,
            tenant_remaining_usd=(
                self.spend.remaining(query.tenant) if hold is None else hold.remaining_usd
            ),
            edge_available=self.edge_available,
            cloud_available=self.cloud_available,
            direct_max_tokens=self.settings.direct_max_tokens,
            step_by_step_worth=query.answer_format in self.settings.step_by_step_formats,
            pii_kept_local=pii_kinds if edge_only else (),
            reply_margin_ms=self.settings.reply_margin_ms,
            overhead_ms=self.overhead.reserve_ms(),
            p_edge_ok_step_by_step=p_edge_ok_step_by_step,
            step_by_step_margin=policy.mode_margin,
            explore_mode=self._explore_mode(),
        )
        plan = decide.plan(query, situation)
        record = DecisionRecord(
            p_edge_ok=plan.p_edge_ok,
            pre_generation_threshold=policy.pre_generation_threshold,
            cascade_threshold=policy.cascade_threshold,
            budget=BudgetView(
                latency_budget_ms=budget_ms,
                latency_budget_source=source,
                cost_ceiling_usd=query.cost_ceiling_usd,
                tenant_budget_remaining_usd=situation.tenant_remaining_usd,
                est_edge_direct_ms=edge.ms(min(self.settings.direct_max_tokens, query.max_tokens)),
                est_edge_step_by_step_ms=edge.ms(query.max_tokens),
                est_cloud_ms=est_cloud_ms,
                est_cloud_cost_usd=cloud_cost,
            ),
            policy_version=policy.version,
            edge_max_tokens=plan.edge_max_tokens,
            pii_kinds=pii_kinds,
        )
        record.timings.decision_ms = (time.monotonic() - started) * 1000.0

        def cascade_score(text: str, answer: EdgeAnswer) -> float:
            signals = EdgeSignals.from_summary(answer.summary)
            return policy.p_edge_ok_after(text, answer.text, signals, p_edge_ok)

        return Cascade(
            request_id=request_id,
            query=query,
            plan=plan,
            situation=situation,
            record=record,
            deadline=started + budget_ms / 1000.0,
            started=started,
            edge=self.edge,
            cloud=self.cloud,
            edge_latency=self.edge_latency,
            cloud_latency=self.cloud_latency,
            cascade_score=cascade_score,
        )

    async def stream(
        self,
        query: Query,
        *,
        grpc_remaining_s: float | None = None,
        request_id: str = "",
        trace_context: Context | None = None,
        after_answer: spans.AfterAnswer = spans.next_turn,
        unary: bool = False,
    ) -> AsyncGenerator[Event, None]:
        """Routes one query; yields deltas and resets, and the `RouteResult` last.

        Raises `policy.NoRoute` or `cascade.RouteFailed` when no tier can answer.
        The query holds its estimated cloud cost against its tenant's budget from the
        decision to the result, so queries running at once cannot overspend it.
        `trace_context`: the caller's trace (its `traceparent`, from gRPC metadata or
        HTTP headers); None: the current one. `after_answer`: how the door runs work once
        its answer has gone (the request's spans are made then). `unary`: the caller keeps
        only the `RouteResult` (`generate`): the cloud's answer is not streamed."""
        hold = await self.spend.hold(query.tenant, self._cloud_cost(query))
        # The request's server span: its parent is the caller's span, over either door.
        request_trace = spans.RequestTrace(
            self.tracing,
            trace_context if trace_context is not None else current_context(),
            after_answer,
        )
        cascade: Cascade | None = None
        settled = False
        try:
            deciding = request_trace.step(spans.DECIDE)
            cascade = self.decide(
                query, grpc_remaining_s=grpc_remaining_s, request_id=request_id, hold=hold
            )
            spans.decided(deciding, cascade.record, cascade.plan.first, cascade.plan.reasoning_mode)
            cascade.trace = request_trace
            cascade.unary = unary
            cascade.record.trace_id = request_trace.trace_id
            metrics.DECISION_SECONDS.observe(cascade.record.timings.decision_ms / 1000.0)
            metrics.P_EDGE_OK.observe(cascade.record.p_edge_ok)
            traced = {"trace_id": cascade.record.trace_id} if cascade.record.trace_id else {}
            with structlog.contextvars.bound_contextvars(
                request_id=cascade.request_id,
                tenant=query.tenant,
                client_request_id=query.client_request_id,
                **traced,
            ):
                async for event in cascade.run():
                    if isinstance(event, RouteResult):
                        request_trace.routed(event)
                        # Settled first: a shadow call sees the budget this query left.
                        await self.spend.settle(hold, event.decision.cost_usd)
                        settled = True
                        await self._log(query, event, cascade, request_trace)
                        self.overhead.observe(_own_ms(cascade))
                    yield event
        except (NoRoute, RouteFailed) as error:
            request_trace.failed(error)
            raise
        finally:
            request_trace.end()
            if not settled:
                # No result (no route, a failure, the client gone): a cloud call that
                # completed still cost its price.
                await self.spend.settle(hold, cascade.record.cost_usd if cascade else 0.0)

    async def generate(
        self,
        query: Query,
        *,
        grpc_remaining_s: float | None = None,
        trace_context: Context | None = None,
        after_answer: spans.AfterAnswer = spans.next_turn,
    ) -> RouteResult:
        result: RouteResult | None = None
        # Read to its end rather than left at the result: an async generator left
        # suspended is closed by the event loop's finalizer hook, a task and a wake-up of
        # the loop each (for this one and the cascade's inside it) on every request.
        async for event in self.stream(
            query,
            grpc_remaining_s=grpc_remaining_s,
            trace_context=trace_context,
            after_answer=after_answer,
            unary=True,
        ):
            if isinstance(event, RouteResult):
                result = event
        if result is None:
            raise RouteFailed("the cascade ended without a result")
        return result

    async def _log(
        self, query: Query, result: RouteResult, cascade: Cascade, request_trace: spans.RequestTrace
    ) -> None:
        step = request_trace.step(spans.OUTCOME_LOG)
        try:
            written = self._finish(query, result, cascade.situation)
            # Answered once logged, so a crash cannot lose an answered request's row
            # (docs/reliability.md).
            await self.outcomes.committed(written, timeout_s=self.settings.outcome_commit_wait_s)
        finally:
            step.end()

    def _finish(self, query: Query, result: RouteResult, situation: Situation) -> Written:
        decision = result.decision
        decision.shadow = self.shadow.consider(query, result, situation)
        missed = decision.timings.total_ms > decision.budget.latency_budget_ms
        # A cloud known down before the call was not escalated to, whatever the verdict.
        escalated = result.route == "EDGE_THEN_CLOUD" or (
            result.degraded_cause == "cloud_failed" and decision.p_edge_ok_after is not None
        )
        if decision.edge_error and "UNAVAILABLE" in decision.edge_error:
            self.edge_available = False
        self.stats.count(result.route, escalated=escalated, missed_deadline=missed)
        entry = self._stored(
            LoggedRequest(
                query_text=query.text,
                messages=query.messages,
                answer_format=query.answer_format,
                tenant=query.tenant,
                client_request_id=query.client_request_id,
                result=result,
            )
        )
        self.stats.recent.appendleft(
            RecentDecision(
                request_id=result.request_id,
                at=time.time(),
                route=result.route,
                reason=decision.reason,
                total_ms=decision.timings.total_ms,
                edge_ms=decision.timings.edge_ms,
                cloud_ms=decision.timings.cloud_ms,
                prompt=entry.query_text if self.settings.store_prompts else None,
            )
        )
        metrics.REQUESTS.labels(result.route, result.reasoning_mode or "CLOUD").inc()
        metrics.REQUEST_SECONDS.labels(result.route).observe(decision.timings.total_ms / 1000.0)
        metrics.ESCALATIONS.inc(escalated)
        if result.degraded_cause is not None:
            metrics.DEGRADED.labels(result.degraded_cause).inc()
        metrics.DEADLINE_MISSES.inc(missed)
        metrics.COST.labels(query.tenant).inc(decision.cost_usd)
        log.info(
            "router.routed",
            route=result.route,
            reason=decision.reason,
            p_edge_ok=round(decision.p_edge_ok, 4),
            p_edge_ok_after=decision.p_edge_ok_after,
            reasoning_mode=result.reasoning_mode,
            policy_version=decision.policy_version,
            total_ms=round(decision.timings.total_ms, 1),
            cost_usd=decision.cost_usd,
            shadow=decision.shadow,
        )
        return self.outcomes.record(entry)

    def _stored(self, entry: LoggedRequest) -> LoggedRequest:
        """`entry` as the router may keep it (the outcome log, the status page)."""
        return masked(entry, self.pii) if self.settings.pii.mask_stored else entry

    async def watch(self) -> None:
        """Keeps edge availability and the active policy current, until cancelled."""
        last_reload = time.monotonic()
        while True:
            self.edge_available = await self.edge.healthy()
            metrics.TIER_AVAILABLE.labels("edge").set(self.edge_available)
            metrics.TIER_AVAILABLE.labels("cloud").set(self.cloud_available)
            interval = self.settings.policy_reload_interval_s
            if interval and time.monotonic() - last_reload >= interval:
                last_reload = time.monotonic()
                await asyncio.to_thread(self.policies.reload_if_changed)
            await asyncio.sleep(self.settings.health_interval_s)

    async def aclose(self) -> None:
        await self.shadow.aclose()
        await self.edge.aclose()
        if self.cloud is not None:
            with contextlib.suppress(Exception):
                await self.cloud.aclose()
        await self.spend.aclose()
        await asyncio.to_thread(self.outcomes.close)
        # Last: the spans of the requests that just finished still go out.
        await asyncio.to_thread(self.tracing.shutdown)
