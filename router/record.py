"""The result of routing one query and its decision record, as plain Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from router.edge_client import EdgeAnswer
from router.policy import ReasoningMode

# Defined with their wire mapping in sllm/enums.py; named here too for the router's modules.
from sllm.enums import BudgetSource as BudgetSource
from sllm.enums import Route as Route
from sllm.records import BudgetView

# Why an edge answer stands in the cloud's place: the cloud call failed during the query,
# or the cloud was known down (its breaker open) before it.
DegradedCause = Literal["cloud_failed", "cloud_down"]


@dataclass(slots=True)
class Timings:
    decision_ms: float = 0.0
    edge_ms: float = 0.0
    cloud_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(slots=True)
class DecisionRecord:
    p_edge_ok: float
    pre_generation_threshold: float
    cascade_threshold: float
    budget: BudgetView
    policy_version: str
    edge_max_tokens: int
    p_edge_ok_after: float | None = None
    reason: str = ""
    timings: Timings = field(default_factory=Timings)
    cost_usd: float = 0.0
    low_confidence: bool = False
    cloud_error: str = ""
    edge_error: str = ""
    # A shadow call was started to label the edge's answer (router/shadow.py).
    shadow: bool = False
    # The kinds of personal data found in the prompt (router/privacy.py), never the values.
    pii_kinds: tuple[str, ...] = ()
    # The request's trace (sllm/tracing.py), 32 hex digits; empty when tracing is off.
    trace_id: str = ""

    @property
    def difficulty(self) -> float:
        return 1.0 - self.p_edge_ok


@dataclass(frozen=True, slots=True)
class RouteResult:
    request_id: str
    text: str
    final_answer: str
    route: Route
    # The edge's mode when the edge's answer is returned; None for a cloud answer.
    reasoning_mode: ReasoningMode | None
    degraded: bool
    decision: DecisionRecord
    prompt_tokens: int
    completion_tokens: int
    # What each tier said, when it ran (the edge's answer even when it was not returned).
    edge: EdgeAnswer | None
    cloud_text: str | None
    cloud_model: str | None

    @property
    def degraded_cause(self) -> DegradedCause | None:
        if not self.degraded:
            return None
        return "cloud_failed" if self.decision.cloud_error else "cloud_down"
