"""The routing decision as pure functions of scores, thresholds, budget and hints.

`plan` decides before generation (which tier first, reasoning mode, token cap);
`judge_edge` decides after an edge attempt (accept or escalate). Neither does I/O, so
every branch is testable with plain numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from router.estimators import EdgeEstimate
from router.query import Query

# Defined with their wire mapping in sllm/enums.py; named here too for the router's modules.
from sllm.enums import ReasoningMode as ReasoningMode
from sllm.enums import Tier as Tier

# How a query went unanswered, for a door to pick its status: a tier could not answer,
# the tiers were saturated (the same query later may pass), or the time ran out.
Failure = Literal["unavailable", "saturated", "deadline"]


# The edge is cut off this long after its time budget: a worker that keeps to its budget
# has answered by then (its summary still to send); one that does not (hung, stuck in a
# call) is cut off there. An edge that goes first with time kept for the cloud ends its
# share twice this much earlier: a cut-off edge still leaves the cloud its estimated time,
# noticing the cut-off included.
EDGE_GRACE_MS = 250.0


@dataclass(frozen=True, slots=True)
class Shortfall:
    """The time left was all that kept a tier from a query: the smallest latency budget
    that would let one answer, the same for each tier the query may use (None: it may
    not), and the time the tiers had, all in ms."""

    min_budget_ms: int
    edge_min_ms: int | None
    cloud_min_ms: int | None
    remaining_ms: int


class NoRoute(Exception):
    """Neither tier may answer this query; the message says why, `failure` how, and
    `shortfall` by how much time when that is what stopped it."""

    def __init__(
        self, message: str, failure: Failure = "unavailable", *, shortfall: Shortfall | None = None
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.shortfall = shortfall


@dataclass(frozen=True, slots=True)
class Situation:
    """What the router knows before generation."""

    p_edge_ok: float
    pre_generation_threshold: float
    remaining_ms: float
    edge: EdgeEstimate
    est_cloud_ms: float
    est_cloud_cost_usd: float
    tenant_remaining_usd: float | None
    edge_available: bool
    cloud_available: bool
    direct_max_tokens: int
    step_by_step_worth: bool
    # The kinds of personal data found in the prompt that keep this query off the cloud.
    pii_kept_local: tuple[str, ...] = ()
    # Kept for the reply after the router is done: a budget that would work includes it.
    reply_margin_ms: float = 0.0
    # The router's own time in a request (deciding, dispatching, replying), as measured:
    # the tiers get the rest of `remaining_ms`.
    overhead_ms: float = 0.0
    # The policy's learned p_edge_ok were the edge to reason step by step (`p_edge_ok` is
    # then the direct answer's); None: no mode model, the answer format decides.
    p_edge_ok_step_by_step: float | None = None
    # Step by step only where it expects more than direct by this (the mode model's).
    step_by_step_margin: float = 0.0
    # Exploration drew this query: the edge answers in the mode not chosen, when both fit,
    # so the outcome log holds both modes' outcomes to learn from.
    explore_mode: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    first: Tier
    # After an edge attempt the cloud may still answer (escalation or, cloud first, fallback).
    other_tier_allowed: bool
    reasoning_mode: ReasoningMode
    edge_max_tokens: int
    edge_time_budget_ms: float
    # The cloud's share of the time when it goes first (the rest is kept for the edge).
    cloud_time_budget_ms: float
    # Why the first tier was chosen, as a clause of the decision's reason.
    why: str
    # Why the cloud may not be used, when it may not.
    cloud_blocker: str | None
    # The p_edge_ok the tier was chosen with: the better mode's, with a mode model.
    p_edge_ok: float
    # The policy wanted the cloud first, but the cloud is down: the edge answers instead.
    degraded: bool = False
    # Why the edge reasons as it does, when a mode model or exploration chose it; empty
    # when the answer format did (the rule without a mode model).
    mode_why: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    escalate: bool
    low_confidence: bool
    why: str
    # The policy wanted to escalate, but the cloud is down: the edge answer stands.
    degraded: bool = False


def reserved(s: Situation) -> Situation:
    """`s` with the router's overheads taken out of the time left, and added to what a
    budget that would work must hold (applying it twice takes nothing more)."""
    return dataclasses.replace(
        s,
        remaining_ms=max(0.0, s.remaining_ms - s.overhead_ms),
        reply_margin_ms=s.reply_margin_ms + s.overhead_ms,
        overhead_ms=0.0,
    )


def cloud_blocker(query: Query, s: Situation) -> str | None:
    """Why the cloud may not answer this query, or None when it may."""
    s = reserved(s)
    if query.local_only:
        return "the query is local_only"
    if query.route_hint == "EDGE_ONLY":
        return "the route hint is EDGE_ONLY"
    if s.pii_kept_local:
        kinds = ", ".join(s.pii_kept_local)
        return f"the prompt holds personal data ({kinds}), which stays on the edge"
    if not s.cloud_available:
        return "the cloud's circuit breaker is open"
    if query.cost_ceiling_usd is not None and s.est_cloud_cost_usd > query.cost_ceiling_usd:
        return (
            f"the cloud's estimated cost ${s.est_cloud_cost_usd:.6f} exceeds the cost "
            f"ceiling ${query.cost_ceiling_usd:.6f}"
        )
    if s.tenant_remaining_usd is not None and s.tenant_remaining_usd <= 0:
        return f"tenant {query.tenant!r} has spent its cloud budget for this window"
    if s.est_cloud_ms > s.remaining_ms:
        return (
            f"the cloud needs about {s.est_cloud_ms:.0f} ms and only {s.remaining_ms:.0f} ms remain"
        )
    return None


def cloud_down_only(query: Query, s: Situation) -> bool:
    """The cloud may not answer only because it is down: were it up, it could."""
    up = dataclasses.replace(s, cloud_available=True)
    return not s.cloud_available and cloud_blocker(query, up) is None


def _edge_blocker(query: Query, s: Situation) -> str | None:
    if query.route_hint == "CLOUD_ONLY":
        return "the route hint is CLOUD_ONLY"
    if not s.edge_available:
        return "the edge worker is unavailable"
    if s.edge.ms(1) > s.remaining_ms:
        return (
            f"the edge needs about {s.edge.ms(1):.0f} ms for a first token and only "
            f"{s.remaining_ms:.0f} ms remain"
        )
    return None


def _no_route(query: Query, s: Situation, no_edge: str, no_cloud: str) -> NoRoute:
    """DEADLINE_EXCEEDED-worthy when a tier is held back only by the time left, with the
    smallest budget that would let one answer; else unavailable."""
    roomy = dataclasses.replace(s, remaining_ms=math.inf)
    edge_min, cloud_min = (
        math.ceil(need + s.reply_margin_ms) if blocked is None else None
        for need, blocked in (
            (s.edge.ms(1), _edge_blocker(query, roomy)),
            (s.est_cloud_ms, cloud_blocker(query, roomy)),
        )
    )
    needs = [need for need in (edge_min, cloud_min) if need is not None]
    message = f"no tier can answer: {no_edge}, and {no_cloud}"
    if not needs:
        return NoRoute(message)
    smallest = min(needs)
    return NoRoute(
        f"{message}; a latency budget of at least {smallest} ms would let a tier answer",
        "deadline",
        shortfall=Shortfall(smallest, edge_min, cloud_min, math.floor(s.remaining_ms)),
    )


@dataclass(frozen=True, slots=True)
class EdgeShape:
    mode: ReasoningMode
    max_tokens: int
    why: str = ""


def _mode_wanted(s: Situation) -> tuple[bool, str]:
    """Whether step by step is wanted, and why when a mode model decided it."""
    p_step = s.p_edge_ok_step_by_step
    if p_step is None:
        return s.step_by_step_worth, ""
    better = p_step > s.p_edge_ok + s.step_by_step_margin
    margin = f" + margin {s.step_by_step_margin:.2f}" if s.step_by_step_margin else ""
    return better, (
        f"p_edge_ok step by step {p_step:.2f} "
        f"{'is above' if better else 'is not above'} {s.p_edge_ok:.2f} direct{margin}"
    )


def _edge_shape(query: Query, s: Situation, time_ms: float) -> EdgeShape:
    """How the edge answers: step by step when that is wanted (the mode model's expected
    outcome, else the answer format) and its token cap fits the time; else directly, with
    the tokens that fit. Exploration answers the other way when both fit."""
    step_fits = s.edge.ms(query.max_tokens) <= time_ms
    step, why = _mode_wanted(s)
    if s.explore_mode and step_fits:
        step = not step
        why = f"exploring the mode not chosen ({why or 'the answer format rule'})"
    elif step and not step_fits and why:
        why += (
            f", but {query.max_tokens} tokens step by step need about "
            f"{s.edge.ms(query.max_tokens):.0f} ms and {time_ms:.0f} ms remain"
        )
    if step and step_fits:
        return EdgeShape("STEP_BY_STEP", query.max_tokens, why)
    cap = min(s.direct_max_tokens, query.max_tokens, s.edge.tokens_within(time_ms))
    return EdgeShape("DIRECT", max(1, cap), why)


def expected_p_edge_ok(query: Query, s: Situation) -> float:
    """The edge's p_edge_ok in the better mode it has the time for: with a mode model,
    step by step counts when it is wanted and its tokens fit the time left (the cloud's
    kept time aside)."""
    p_step = s.p_edge_ok_step_by_step
    step, _ = _mode_wanted(s)
    if p_step is None or not step or s.edge.ms(query.max_tokens) > s.remaining_ms:
        return s.p_edge_ok
    return p_step


def plan(query: Query, s: Situation) -> Plan:
    """Decides which tier answers first, and how deeply the edge may think, with the time
    the router's own work leaves."""
    s = reserved(s)
    no_cloud = cloud_blocker(query, s)
    no_edge = _edge_blocker(query, s)
    if no_cloud is not None and no_edge is not None:
        raise _no_route(query, s, no_edge, no_cloud)
    p_edge_ok = expected_p_edge_ok(query, s)
    below = p_edge_ok < s.pre_generation_threshold
    if no_edge is not None or (below and no_cloud is None):
        why = no_edge or (
            f"p_edge_ok {p_edge_ok:.2f} is below the pre-generation threshold "
            f"{s.pre_generation_threshold:.2f}"
        )
        shape = _edge_shape(query, s, s.remaining_ms)
        cloud_time = s.remaining_ms
        # A cloud that fails late (hangs, stalls) must leave the edge time to answer in
        # its place: keep the time of an edge answer that fits beside the cloud's estimate.
        if no_edge is None and s.edge.ms(1) <= s.remaining_ms - s.est_cloud_ms:
            shape = _edge_shape(query, s, s.remaining_ms - s.est_cloud_ms)
            cloud_time = s.remaining_ms - s.edge.ms(shape.max_tokens)
        return Plan(
            first="CLOUD",
            other_tier_allowed=no_edge is None,
            reasoning_mode=shape.mode,
            edge_max_tokens=shape.max_tokens,
            edge_time_budget_ms=s.remaining_ms,
            cloud_time_budget_ms=cloud_time,
            why=why,
            cloud_blocker=None,
            p_edge_ok=p_edge_ok,
            mode_why=shape.why,
        )
    # Keep time for an escalation when the edge can still answer in what is left.
    edge_time = s.remaining_ms
    kept = s.remaining_ms - s.est_cloud_ms - 2 * EDGE_GRACE_MS
    if no_cloud is None and s.edge.ms(1) <= kept:
        edge_time = kept
    shape = _edge_shape(query, s, edge_time)
    degraded = below and cloud_down_only(query, s)
    if degraded:
        why = (
            f"p_edge_ok {p_edge_ok:.2f} is below the pre-generation threshold "
            f"{s.pre_generation_threshold:.2f}, but {no_cloud}"
        )
    else:
        why = no_cloud or (
            f"p_edge_ok {p_edge_ok:.2f} meets the pre-generation threshold "
            f"{s.pre_generation_threshold:.2f}"
        )
    return Plan(
        first="EDGE",
        other_tier_allowed=no_cloud is None,
        reasoning_mode=shape.mode,
        edge_max_tokens=shape.max_tokens,
        # The edge reads its deadline before each token, so one token may end past it.
        edge_time_budget_ms=max(s.edge.ms(1), edge_time - s.edge.ms_per_token),
        cloud_time_budget_ms=s.remaining_ms,
        why=why,
        cloud_blocker=no_cloud,
        p_edge_ok=p_edge_ok,
        degraded=degraded,
        mode_why=shape.why,
    )


def judge_edge(
    *,
    collapsed: bool,
    p_edge_ok_after: float,
    cascade_threshold: float,
    cloud_blocker_now: str | None,
    cloud_down: bool = False,
) -> Verdict:
    """After the edge answered: keep its answer, or escalate to the cloud. `cloud_down`:
    the blocker is only that the cloud is down (an escalation it stops is degraded)."""
    if collapsed:
        doubt = "the edge's confidence collapsed"
    elif p_edge_ok_after < cascade_threshold:
        doubt = (
            f"the cascade score {p_edge_ok_after:.2f} is below the cascade threshold "
            f"{cascade_threshold:.2f}"
        )
    else:
        return Verdict(
            escalate=False,
            low_confidence=False,
            why=(
                f"the cascade score {p_edge_ok_after:.2f} meets the cascade threshold "
                f"{cascade_threshold:.2f}"
            ),
        )
    if cloud_blocker_now is not None:
        return Verdict(
            escalate=False,
            low_confidence=True,
            why=f"{doubt}, but {cloud_blocker_now}, so the edge answer stands with low confidence",
            degraded=cloud_down,
        )
    return Verdict(escalate=True, low_confidence=False, why=f"{doubt}, so it escalated")
