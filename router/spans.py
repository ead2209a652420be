"""The spans of one routed request, so that its trace reads like its decision record.

    sllm.route                the whole request (route, reason, request_id)
    ├── sllm.decide           scorer, budget and policy
    ├── sllm.edge             the edge call (exit reason, tokens, confidence, queue time)
    │   ├── sllm.edge.prefill } placed from the worker's own timings, back from the moment
    │   └── sllm.edge.decode  } its summary arrived: whichever process the worker runs in
    ├── sllm.cloud            the cloud call (cloud_adapter: attempts, retries, breaker)
    └── sllm.outcome_log      the outcome row written and, within the wait, committed

Only the cloud call is an SDK span while the request runs (cloud_adapter makes it, under
the route span's ids). The request's own steps are plain timings with ids chosen as they
start (`sllm.tracing.Recorder`): the ids name the trace in the logs and the decision record
and parent the callees (the cloud call, an edge worker in another process), and the spans
themselves are made in one go once the answer has gone, for a few microseconds each where
the SDK takes 40-60 to start and end one (docs/observability.md).

Spans are parented explicitly rather than through the current context: the request runs
in async generators, whose context a consumer shares between its steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext
from opentelemetry.util.types import AttributeValue

from router.edge_client import EdgeAnswer
from router.record import DecisionRecord, RouteResult
from router.signals import EdgeSignals
from sllm.tracing import Recorder, Tracing, caller_span, trace_headers, trace_id

ROUTE = "sllm.route"
DECIDE = "sllm.decide"
EDGE = "sllm.edge"
OUTCOME_LOG = "sllm.outcome_log"

Attributes = dict[str, AttributeValue]
# How a door runs work once its answer has gone (the gRPC call's end, the HTTP response's
# background task): it is given the work.
AfterAnswer = Callable[[Callable[[], None]], None]


def next_turn(work: Callable[[], None]) -> None:
    """For a caller that has no later moment to offer: the event loop's next turn."""
    asyncio.get_running_loop().call_soon(work)


@dataclass(slots=True)
class Step:
    """A step of the request, timed now and made a span once the request is over
    (`RequestTrace.end`). Its ids are chosen then, or earlier when a callee continues it."""

    name: str
    start_ns: int
    kind: trace.SpanKind = trace.SpanKind.INTERNAL
    end_ns: int = 0
    attributes: Attributes = field(default_factory=dict)
    error: str = ""
    children: list[Step] = field(default_factory=list)
    context: SpanContext | None = None
    # False in a request that is not traced: nothing is kept, so nothing need be described.
    recorded: bool = True

    def end(self) -> None:
        self.end_ns = time.time_ns()

    def failed(self, error: BaseException) -> None:
        self.error = str(error)
        self.attributes["sllm.error"] = type(error).__name__

    def export(self, recorder: Recorder, parent: SpanContext | None) -> None:
        """This step's span and its children's. `parent` None: the root of a new trace,
        whose ids are chosen already."""
        context = self.context
        if context is None:
            assert parent is not None, f"{self.name}: a step without ids needs a parent"
            context = recorder.child(parent)
        # A step whose end was never marked (its code raised) ends when its span is made.
        end_ns = self.end_ns or time.time_ns()
        recorder.record(
            self.name,
            context,
            parent,
            kind=self.kind,
            start_ns=self.start_ns,
            end_ns=end_ns,
            attributes=self.attributes,
            error=self.error,
        )
        for child in self.children:
            child.export(recorder, context)


_UNTRACED = Tracing.off()


class RequestTrace:
    """One request's trace: its route step, under the caller's trace, and the steps inside
    it. Untraced (tracing off, or the request not sampled), steps are made and dropped."""

    def __init__(
        self, tracing: Tracing, caller: Context | None, after_answer: AfterAnswer = next_turn
    ) -> None:
        self.recorder = tracing.recorder
        self.after_answer = after_answer
        started_ns = time.time_ns()
        ids = self.recorder.sample(caller, ROUTE, trace.SpanKind.SERVER) if self.recorder else None
        self.recording = ids is not None
        self.trace_id = trace_id(ids) if ids is not None else ""
        self._caller = caller
        self.route = Step(
            ROUTE, started_ns, trace.SpanKind.SERVER, context=ids, recorded=self.recording
        )

    @classmethod
    def untraced(cls) -> RequestTrace:
        return cls(_UNTRACED, None)

    @property
    def context(self) -> Context | None:
        """What a live child (the cloud call) starts in; None when nothing is recorded."""
        return _inside(self.route.context)

    def step(self, name: str, *, kind: trace.SpanKind = trace.SpanKind.INTERNAL) -> Step:
        step = Step(name, time.time_ns(), kind, recorded=self.recording)
        if self.recording:
            self.route.children.append(step)
        return step

    def headers(self, step: Step) -> dict[str, str]:
        """The W3C headers that make a callee's spans children of `step`, whose ids are
        chosen now so that it has an id to give; none when nothing is recorded."""
        if self.recorder is None or self.route.context is None:
            return {}
        step.context = self.recorder.child(self.route.context)
        return trace_headers(NonRecordingSpan(step.context))

    def routed(self, result: RouteResult) -> None:
        if self.recording:
            self.route.attributes.update(_routed(result))

    def failed(self, error: BaseException) -> None:
        if self.recording:
            self.route.failed(error)

    def end(self) -> None:
        """The request is over: its spans are made once its answer has gone."""
        if self.recorder is None or not self.recording:
            return
        self.route.end()
        recorder, caller = self.recorder, self._caller
        self.after_answer(lambda: self.route.export(recorder, caller_span(caller)))


def _inside(ids: SpanContext | None) -> Context | None:
    return trace.set_span_in_context(NonRecordingSpan(ids)) if ids is not None else None


def decided(step: Step, record: DecisionRecord, first: str, mode: str) -> None:
    step.end()
    if not step.recorded:
        return
    step.attributes.update(
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


def _routed(result: RouteResult) -> Attributes:
    decision = result.decision
    return {
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


def edge_answered(step: Step, answer: EdgeAnswer) -> None:
    """The edge call's outcome on its step, and the worker's two phases as its children."""
    if not step.recorded:
        return
    summary = answer.summary
    signals = EdgeSignals.from_summary(summary)
    step.attributes.update(
        {
            "sllm.edge.exit_reason": signals.exit_reason,
            "sllm.edge.exit_detail": summary.exit_detail,
            "sllm.edge.prompt_tokens": summary.prompt_tokens,
            "sllm.edge.completion_tokens": summary.completion_tokens,
            "sllm.edge.confidence": signals.confidence_score,
            "sllm.edge.mean_logprob": signals.mean_logprob,
            "sllm.edge.answer_found": signals.answer_found,
            "sllm.edge.model": summary.model,
            # An attribute, not a span: each span costs the process 15-25 us.
            "sllm.edge.queue_ms": summary.timings.queue_ms,
        }
    )
    timings = summary.timings
    end_ns = step.end_ns
    phases = (
        ("sllm.edge.decode", timings.decode_ms, summary.completion_tokens),
        ("sllm.edge.prefill", timings.prefill_ms, summary.prompt_tokens),
    )
    for name, ms, tokens in phases:
        start_ns = end_ns - int(ms * 1_000_000)
        step.children.append(
            Step(name, start_ns, end_ns=end_ns, attributes={"sllm.edge.tokens": tokens})
        )
        end_ns = start_ns
