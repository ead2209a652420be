"""What the router answers, as plain Python: frozen dataclasses of numbers, strings and the
enums of sllm/enums.py, read from the `sllm.v1` messages (`*_from_wire`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf.message import Message

from sllm.enums import (
    BUDGET_SOURCES,
    EXIT_REASONS,
    REASONING_MODES,
    ROUTES,
    TIERS,
    BudgetSource,
    ExitReason,
    ReasoningMode,
    Route,
    Wire,
    known,
)
from sllm.records import BudgetView, Delta, Reset
from sllm.v1 import router_pb2

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@dataclass(frozen=True, slots=True)
class Timings:
    decision_ms: float
    edge_ms: float
    cloud_ms: float
    total_ms: float


@dataclass(frozen=True, slots=True)
class Decision:
    """Why the router answered as it did (proto/sllm/v1/router.proto, DecisionRecord)."""

    # The reason in one plain sentence.
    reason: str
    # Predicted, before generation, that the edge's answer is acceptable.
    p_edge_ok: float
    pre_generation_threshold: float
    cascade_threshold: float
    # The cascade's score once the edge had answered; None when it did not.
    p_edge_ok_after: float | None
    budget: BudgetView
    # Why the edge stopped, and its confidence in [0, 1]; None when the edge did not run.
    edge_exit_reason: ExitReason | None
    edge_confidence: float | None
    edge_max_tokens: int
    timings: Timings
    cost_usd: float
    # Returned with low confidence (e.g. the cloud could not answer in time).
    low_confidence: bool
    edge_error: str
    cloud_error: str
    # Kinds of personal data found in the prompt ("email", ...), never the values.
    pii_kinds: tuple[str, ...]
    policy_version: str


@dataclass(frozen=True, slots=True)
class Result:
    text: str
    # The answer the format's rule found in the text ("" when none).
    final_answer: str
    route: Route
    # The edge's mode when the edge's answer is returned; None for the cloud's.
    reasoning_mode: ReasoningMode | None
    # The cloud failed and the edge's answer stands in (route EDGE_FALLBACK).
    degraded: bool
    # What `feedback` takes.
    request_id: str
    prompt_tokens: int
    completion_tokens: int
    decision: Decision


# What `stream` yields: deltas, at most one reset per tier change, then the `Result`.
Event = Delta | Reset | Result


@dataclass(frozen=True, slots=True)
class RouteStats:
    requests: int
    # Share of traffic per route name ("EDGE", "CLOUD", ...), in [0, 1].
    route_share: dict[str, float]
    escalation_rate: float
    deadline_misses: int


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """The router's active policy and its live statistics."""

    version: str
    pre_generation_threshold: float
    cascade_threshold: float
    scorer: str
    loaded_at: datetime
    stats: RouteStats


class UnknownValue(ValueError):
    """The router sent a value this client does not know (a newer router): upgrade sllm."""


Name = TypeVar("Name", bound=str)
Record = TypeVar("Record", bound="DataclassInstance")


def _unknown(field: str, value: object) -> UnknownValue:
    return UnknownValue(f"the router sent {field} {value!r}, which this client does not know")


def _name(wire: Wire[Any, Name], number: int, field: str) -> Name:
    name = wire.names.get(number)
    if name is None:
        raise _unknown(field, number)
    return name


def _source(text: str) -> BudgetSource:
    source = known(BUDGET_SOURCES, text)
    if source is None:
        raise _unknown("budget.latency_budget_source", text)
    return source


def _copied(kind: type[Record], message: Message, **given: Any) -> Record:
    """`kind` from the message's fields of the same names, but those `given`; an unset
    proto3 `optional` field reads None."""
    values = dict(given)
    for field in dataclasses.fields(kind):
        if field.name not in values:
            described = message.DESCRIPTOR.fields_by_name[field.name]
            unset = described.has_presence and not message.HasField(field.name)
            values[field.name] = None if unset else getattr(message, field.name)
    return kind(**values)


def _decision(message: router_pb2.DecisionRecord) -> Decision:
    budget = message.budget
    edge_ran = message.edge_exit_reason in EXIT_REASONS.names
    return _copied(
        Decision,
        message,
        budget=_copied(
            BudgetView, budget, latency_budget_source=_source(budget.latency_budget_source)
        ),
        edge_exit_reason=EXIT_REASONS.names[message.edge_exit_reason] if edge_ran else None,
        edge_confidence=message.edge_confidence.score if edge_ran else None,
        timings=_copied(Timings, message.timings),
        pii_kinds=tuple(message.pii_kinds),
    )


def result_from_wire(message: router_pb2.RouteResponse) -> Result:
    return _copied(
        Result,
        message,
        route=_name(ROUTES, message.route, "route"),
        # UNSPECIFIED: the cloud's answer, which has no mode.
        reasoning_mode=REASONING_MODES.names.get(message.reasoning_mode),
        decision=_decision(message.decision),
    )


def event_from_wire(message: router_pb2.RouteEvent) -> Event:
    kind = message.WhichOneof("event")
    if kind == "delta":
        return Delta(message.delta.text, _name(TIERS, message.delta.tier, "delta.tier"))
    if kind == "reset":
        return Reset(message.reset.reason)
    if kind == "final":
        return result_from_wire(message.final)
    raise UnknownValue(f"the router sent an event of kind {kind!r}")


def policy_from_wire(message: router_pb2.PolicyInfo) -> PolicyInfo:
    return _copied(
        PolicyInfo,
        message,
        loaded_at=message.loaded_at.ToDatetime(tzinfo=UTC),
        stats=_copied(RouteStats, message.stats, route_share=dict(message.stats.route_share)),
    )
