"""Executes one routing plan: the edge and/or the cloud, with escalation and fallback.

`Cascade.run` is an async generator of events (text deltas, resets) ending with the
`RouteResult`; the unary API keeps only the result, the streaming API forwards them all.
For the unary API (`unary`), the cloud's answer comes in one piece, as one delta.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import structlog
from opentelemetry import trace

from cloud_adapter import CloudClient, CloudError, CloudResult, CloudStreamBroken
from cloud_adapter.errors import CloudDeadlineExceeded, CloudRateLimited
from router import policy as decide
from router import spans
from router.edge_client import Edge, EdgeAnswer, EdgeCall, EdgeError
from router.estimators import CloudLatency, EdgeLatency, estimate_prompt_tokens
from router.explain import reason
from router.policy import Failure, Plan, Situation, Verdict
from router.query import Query
from router.record import DecisionRecord, Route, RouteResult
from sllm.answers import extract_answer
from sllm.records import Delta, Reset
from sllm.status import ErrorReason

log = structlog.get_logger("router.cascade")


# A tier's failure: how (for the status code) and why (for its ErrorInfo).
TierFailure = tuple[Failure, ErrorReason]
_EDGE_FAILURES: dict[str, TierFailure] = {
    "RESOURCE_EXHAUSTED": ("saturated", "EDGE_QUEUE_FULL"),
    "DEADLINE_EXCEEDED": ("deadline", "EDGE_TIMED_OUT"),
}


class RouteFailed(Exception):
    """No tier produced an answer; the message says what failed, `failure` how, `reason`
    which tier's failure decided it."""

    def __init__(
        self,
        message: str,
        failure: Failure = "unavailable",
        *,
        reason: ErrorReason = "NO_TIER",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.reason = reason
        # What a rate-limited cloud asked for, when it said.
        self.retry_after_s = retry_after_s


Event = Delta | Reset | RouteResult
# (query text, edge answer) -> p_edge_ok after the edge answered.
CascadeScorer = Callable[[str, EdgeAnswer], float]


@dataclass
class Cascade:
    request_id: str
    query: Query
    plan: Plan
    situation: Situation
    record: DecisionRecord
    deadline: float  # time.monotonic()
    started: float  # time.monotonic()
    edge: Edge
    cloud: CloudClient | None
    edge_latency: EdgeLatency
    cloud_latency: CloudLatency
    cascade_score: CascadeScorer
    edge_answer: EdgeAnswer | None = None
    cloud_result: CloudResult | None = None
    # Text the client has seen since the last reset.
    shown: bool = False
    # How each tier that ran failed, in order.
    failures: list[TierFailure] = field(default_factory=list)
    retry_after_s: float | None = None
    # The request's trace (router/spans.py); records nothing when off.
    trace: spans.RequestTrace = field(default_factory=spans.RequestTrace.untraced)
    # The caller keeps only the result: the cloud call need not stream, which spares the
    # openai SDK's SSE parsing and a pydantic model per chunk (docs/benchmarks.md,
    # "Issue 13, part 3").
    unary: bool = False

    def _remaining_ms(self) -> float:
        return max(0.0, (self.deadline - time.monotonic()) * 1000.0)

    async def run(self) -> AsyncIterator[Event]:
        verdict: Verdict | None = None
        if self.plan.first == "EDGE":
            async for event in self._edge(self.plan.edge_time_budget_ms):
                yield event
            if self.edge_answer is None:
                async for event in self._after_edge_failed():
                    yield event
                route: Route = "CLOUD"
            else:
                verdict = self._judge()
                # The policy wanted the cloud (first, or after the edge), which is down.
                route = "EDGE_FALLBACK" if self.plan.degraded or verdict.degraded else "EDGE"
                if verdict.escalate:
                    async for event in self._escalate(verdict):
                        yield event
                    route = "EDGE_THEN_CLOUD" if self.cloud_result else "EDGE_FALLBACK"
        else:
            cloud_deadline = self.started + self.plan.cloud_time_budget_ms / 1000.0
            async for event in self._cloud(cloud_deadline):
                yield event
            route = "CLOUD"
            if self.cloud_result is None:
                async for event in self._after_cloud_failed():
                    yield event
                route = "EDGE_FALLBACK"
        yield self._result(route, verdict)

    async def _after_edge_failed(self) -> AsyncIterator[Event]:
        blocker = self.plan.cloud_blocker or self._cloud_blocker_now()
        if blocker is not None:
            raise self._failed(f"the edge failed ({self.record.edge_error}) and {blocker}")
        if self.shown:
            yield self._reset("the edge failed; the cloud answers instead")
        async for event in self._cloud(self.deadline):
            yield event
        if self.cloud_result is None:
            raise self._failed(
                f"the edge failed ({self.record.edge_error}) and the cloud failed "
                f"({self.record.cloud_error})"
            )

    async def _after_cloud_failed(self) -> AsyncIterator[Event]:
        if not self.plan.other_tier_allowed:
            raise self._failed(f"the cloud failed ({self.record.cloud_error}), and {self.plan.why}")
        if self.shown:
            yield self._reset("the cloud failed; the edge answers instead")
        async for event in self._edge(self._remaining_ms()):
            yield event
        if self.edge_answer is None:
            raise self._failed(
                f"the cloud failed ({self.record.cloud_error}) and the edge failed "
                f"({self.record.edge_error})"
            )

    def _failed(self, message: str) -> RouteFailed:
        """Unavailable if a tier was, else out of time if one ran out, else saturated."""
        failures: tuple[Failure, ...] = ("unavailable", "deadline", "saturated")
        for failure in failures:
            for how, why in self.failures:
                if how == failure:
                    return RouteFailed(message, how, reason=why, retry_after_s=self.retry_after_s)
        return RouteFailed(message)

    async def _escalate(self, verdict: Verdict) -> AsyncIterator[Event]:
        if self.shown:
            yield self._reset(verdict.why)
        async for event in self._cloud(self.deadline):
            yield event
        if self.cloud_result is None and self.edge_answer is not None:
            if self.shown:
                yield self._reset("the cloud failed; the edge answer is returned")
            yield Delta(self.edge_answer.text, "EDGE")

    def _reset(self, reason: str) -> Reset:
        self.shown = False
        return Reset(reason)

    def _situation_now(self) -> Situation:
        return dataclasses.replace(self.situation, remaining_ms=self._remaining_ms())

    def _cloud_blocker_now(self) -> str | None:
        return decide.cloud_blocker(self.query, self._situation_now())

    def _judge(self) -> Verdict:
        assert self.edge_answer is not None
        p_after = self.cascade_score(self.query.text, self.edge_answer)
        self.record.p_edge_ok_after = p_after
        # One reading of the clock and the tiers for both questions.
        now = self._situation_now()
        verdict = decide.judge_edge(
            collapsed=self.edge_answer.collapsed,
            p_edge_ok_after=p_after,
            cascade_threshold=self.record.cascade_threshold,
            cloud_blocker_now=self.plan.cloud_blocker or decide.cloud_blocker(self.query, now),
            cloud_down=decide.cloud_down_only(self.query, now),
        )
        self.record.low_confidence = verdict.low_confidence
        return verdict

    async def _edge(self, time_budget_ms: float) -> AsyncIterator[Event]:
        step = self.trace.step(spans.EDGE, kind=trace.SpanKind.CLIENT)
        call = EdgeCall(
            messages=list(self.query.messages),
            reasoning_mode=self.plan.reasoning_mode,
            max_tokens=self.plan.edge_max_tokens,
            time_budget_ms=int(time_budget_ms),
            answer_format=self.query.answer_format,
            request_id=self.request_id,
            trace_headers=self.trace.headers(step) if self.edge.continues_trace else {},
        )
        started = time.monotonic()
        try:
            hard_stop_ms = min(self._remaining_ms(), time_budget_ms + decide.EDGE_GRACE_MS)
            async for item in self.edge.generate(call, timeout_s=hard_stop_ms / 1000.0):
                if isinstance(item, str):
                    self.shown = True
                    yield Delta(item, "EDGE")
                else:
                    self.edge_answer = item
        except EdgeError as error:
            self.record.edge_error = str(error)
            self.failures.append(_EDGE_FAILURES.get(error.code, ("unavailable", "EDGE_FAILED")))
            step.failed(error)
            log.warning("router.edge_failed", error=str(error), code=error.code)
        finally:
            self.record.timings.edge_ms += (time.monotonic() - started) * 1000.0
            step.end()
            if self.edge_answer is not None:
                spans.edge_answered(step, self.edge_answer)
        if self.edge_answer is not None:
            summary = self.edge_answer.summary
            self.edge_latency.observe(
                queue_ms=summary.timings.queue_ms,
                prefill_ms=summary.timings.prefill_ms,
                decode_ms=summary.timings.decode_ms,
                prompt_tokens=summary.prompt_tokens,
                completion_tokens=summary.completion_tokens,
                estimated_prompt_tokens=estimate_prompt_tokens(self.query.messages),
            )

    async def _cloud(self, deadline: float) -> AsyncIterator[Event]:
        if self.cloud is None:
            self.record.cloud_error = "no cloud is configured"
            return
        started = time.monotonic()
        try:
            if self.unary:
                self.cloud_result = await self.cloud.complete(
                    self.query.messages,
                    max_tokens=self.query.max_tokens,
                    deadline=deadline,
                    trace_context=self.trace.context,
                )
                if self.cloud_result.text:
                    self.shown = True
                    yield Delta(self.cloud_result.text, "CLOUD")
            else:
                async for chunk in self.cloud.stream(
                    self.query.messages,
                    max_tokens=self.query.max_tokens,
                    deadline=deadline,
                    trace_context=self.trace.context,
                ):
                    if chunk.text:
                        self.shown = True
                        yield Delta(chunk.text, "CLOUD")
                    if chunk.result is not None:
                        self.cloud_result = chunk.result
        except CloudError as error:
            self.cloud_result = None
            self.record.cloud_error = str(error)
            self.failures.append(_cloud_failure(error))
            if isinstance(error, CloudRateLimited):
                self.retry_after_s = error.retry_after_s
            partial = len(error.partial_text) if isinstance(error, CloudStreamBroken) else 0
            log.warning("router.cloud_failed", error=str(error), partial_chars=partial)
        finally:
            self.record.timings.cloud_ms += (time.monotonic() - started) * 1000.0
        if self.cloud_result is not None:
            self.record.cost_usd += self.cloud_result.cost_usd
            self.cloud_latency.observe(
                latency_ms=self.cloud_result.latency_ms,
                ttft_ms=self.cloud_result.ttft_ms,
                completion_tokens=self.cloud_result.completion_tokens,
            )

    def _result(self, route: Route, verdict: Verdict | None) -> RouteResult:
        self.record.timings.total_ms = (time.monotonic() - self.started) * 1000.0
        self.record.reason = reason(
            route,
            self.plan,
            verdict,
            edge_error=self.record.edge_error,
            cloud_error=self.record.cloud_error,
        )
        edge, cloud = self.edge_answer, self.cloud_result
        if route in ("CLOUD", "EDGE_THEN_CLOUD") and cloud is not None:
            text = cloud.text
            final = extract_answer(text, self.query.answer_format) or ""
            tokens = (cloud.prompt_tokens, cloud.completion_tokens)
        else:
            assert edge is not None
            text, final = edge.text, edge.summary.final_answer
            tokens = (edge.summary.prompt_tokens, edge.summary.completion_tokens)
        return RouteResult(
            request_id=self.request_id,
            text=text,
            final_answer=final,
            route=route,
            reasoning_mode=self.plan.reasoning_mode if cloud is None or route == "EDGE" else None,
            degraded=route == "EDGE_FALLBACK",
            decision=self.record,
            prompt_tokens=tokens[0],
            completion_tokens=tokens[1],
            edge=edge,
            cloud_text=cloud.text if cloud is not None else None,
            cloud_model=cloud.model if cloud is not None else None,
        )


def _cloud_failure(error: CloudError) -> TierFailure:
    if isinstance(error, CloudRateLimited):
        return "saturated", "CLOUD_RATE_LIMITED"
    if isinstance(error, CloudDeadlineExceeded):
        return "deadline", "CLOUD_TIMED_OUT"
    return "unavailable", "CLOUD_FAILED"
