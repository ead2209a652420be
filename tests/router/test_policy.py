"""The routing decision as plain numbers: every branch of `plan` and `judge_edge`."""

from __future__ import annotations

import dataclasses

import pytest

from router.estimators import EdgeEstimate
from router.policy import EDGE_GRACE_MS, NoRoute, Situation, judge_edge, plan
from router.query import Query
from sllm.chat import ChatMessage

QUERY = Query(
    messages=[ChatMessage("user", "What is 2 + 2?")],
    max_tokens=200,
    latency_budget_ms=None,
    cost_ceiling_usd=None,
    route_hint="AUTO",
    local_only=False,
    answer_format="NUMBER",
    tenant="default",
    client_request_id="",
)
# Edge: 100 ms before the first token, then 10 ms a token.
SITUATION = Situation(
    p_edge_ok=0.7,
    pre_generation_threshold=0.5,
    remaining_ms=10_000.0,
    edge=EdgeEstimate(overhead_ms=100.0, ms_per_token=10.0),
    est_cloud_ms=1_000.0,
    est_cloud_cost_usd=0.001,
    tenant_remaining_usd=None,
    edge_available=True,
    cloud_available=True,
    direct_max_tokens=32,
    step_by_step_worth=True,
)


def test_a_confident_score_goes_to_the_edge_first_with_room_to_escalate() -> None:
    decided = plan(QUERY, SITUATION)
    assert decided.first == "EDGE"
    assert decided.other_tier_allowed
    assert decided.reasoning_mode == "STEP_BY_STEP"
    assert decided.edge_max_tokens == 200
    # The cloud's estimated time is kept back for an escalation, and the edge's grace; the
    # edge's deadline falls a token (10 ms) earlier, as a token begun before it ends after.
    assert decided.edge_time_budget_ms == pytest.approx(
        10_000.0 - 1_000.0 - 2 * EDGE_GRACE_MS - 10.0
    )
    assert "meets the pre-generation threshold 0.50" in decided.why


def test_a_low_score_goes_to_the_cloud_first() -> None:
    decided = plan(QUERY, dataclasses.replace(SITUATION, p_edge_ok=0.2))
    assert decided.first == "CLOUD"
    assert "p_edge_ok 0.20 is below the pre-generation threshold 0.50" in decided.why


def test_the_cloud_first_leaves_the_edge_time_to_answer_in_its_place() -> None:
    # 10 s, the cloud's estimate 1 s: 9 s would fit 200 step-by-step tokens (2.1 s).
    decided = plan(QUERY, dataclasses.replace(SITUATION, p_edge_ok=0.2))
    assert (decided.reasoning_mode, decided.edge_max_tokens) == ("STEP_BY_STEP", 200)
    assert decided.cloud_time_budget_ms == pytest.approx(10_000.0 - 2_100.0)
    # 1.5 s: what the cloud's 1 s leaves fits 40 tokens, 32 for a direct answer (420 ms).
    tight = plan(QUERY, dataclasses.replace(SITUATION, p_edge_ok=0.2, remaining_ms=1_500.0))
    assert (tight.reasoning_mode, tight.edge_max_tokens) == ("DIRECT", 32)
    assert tight.cloud_time_budget_ms == pytest.approx(1_500.0 - 420.0)
    # Not even one edge token fits beside the cloud's estimate: the cloud gets it all.
    tighter = plan(QUERY, dataclasses.replace(SITUATION, p_edge_ok=0.2, remaining_ms=1_050.0))
    assert tighter.cloud_time_budget_ms == 1_050.0


def test_a_budget_too_small_for_step_by_step_picks_direct_with_a_cap_that_fits() -> None:
    # Step by step needs 100 + 200 * 10 ms; 600 ms leaves room for 50 tokens, capped at 32.
    tight = dataclasses.replace(SITUATION, remaining_ms=600.0, est_cloud_ms=5_000.0)
    decided = plan(QUERY, tight)
    assert decided.first == "EDGE"
    assert decided.reasoning_mode == "DIRECT"
    assert decided.edge_max_tokens == 32
    tighter = dataclasses.replace(tight, remaining_ms=250.0)
    assert plan(QUERY, tighter).edge_max_tokens == 15


@pytest.mark.parametrize(
    ("change", "query_change", "blocker"),
    [
        ({}, {"local_only": True}, "local_only"),
        ({}, {"route_hint": "EDGE_ONLY"}, "EDGE_ONLY"),
        ({"cloud_available": False}, {}, "breaker is open"),
        ({"est_cloud_cost_usd": 0.01}, {"cost_ceiling_usd": 0.005}, "exceeds the cost ceiling"),
        ({"tenant_remaining_usd": 0.0}, {}, "spent its cloud budget"),
        ({"est_cloud_ms": 20_000.0}, {}, "only 10000 ms remain"),
    ],
)
def test_whatever_forbids_the_cloud_keeps_even_a_hard_query_on_the_edge(
    change: dict[str, object], query_change: dict[str, object], blocker: str
) -> None:
    situation = dataclasses.replace(SITUATION, p_edge_ok=0.01, **change)  # type: ignore[arg-type]
    decided = plan(dataclasses.replace(QUERY, **query_change), situation)  # type: ignore[arg-type]
    assert decided.first == "EDGE"
    assert not decided.other_tier_allowed
    assert decided.cloud_blocker is not None and blocker in decided.cloud_blocker
    assert blocker in decided.why


def test_cloud_only_or_an_edge_that_is_down_goes_to_the_cloud() -> None:
    decided = plan(dataclasses.replace(QUERY, route_hint="CLOUD_ONLY"), SITUATION)
    assert (decided.first, decided.other_tier_allowed) == ("CLOUD", False)
    down = plan(QUERY, dataclasses.replace(SITUATION, edge_available=False))
    assert (down.first, down.other_tier_allowed) == ("CLOUD", False)
    assert "edge worker is unavailable" in down.why


def test_no_tier_at_all_is_no_route() -> None:
    with pytest.raises(NoRoute, match="edge worker is unavailable, and the query is local_only"):
        plan(
            dataclasses.replace(QUERY, local_only=True),
            dataclasses.replace(SITUATION, edge_available=False),
        )


def test_after_the_edge_collapse_or_a_low_cascade_score_escalates() -> None:
    collapsed = judge_edge(
        collapsed=True, p_edge_ok_after=0.9, cascade_threshold=0.5, cloud_blocker_now=None
    )
    assert collapsed.escalate and "collapsed" in collapsed.why
    low = judge_edge(
        collapsed=False, p_edge_ok_after=0.3, cascade_threshold=0.5, cloud_blocker_now=None
    )
    assert low.escalate and "0.30 is below the cascade threshold 0.50" in low.why
    kept = judge_edge(
        collapsed=False, p_edge_ok_after=0.6, cascade_threshold=0.5, cloud_blocker_now=None
    )
    assert not kept.escalate and not kept.low_confidence


def test_an_escalation_the_cloud_cannot_take_keeps_the_edge_answer_with_low_confidence() -> None:
    verdict = judge_edge(
        collapsed=False,
        p_edge_ok_after=0.1,
        cascade_threshold=0.5,
        cloud_blocker_now="the cloud needs about 900 ms and only 100 ms remain",
    )
    assert not verdict.escalate
    assert verdict.low_confidence
    assert "only 100 ms remain" in verdict.why


# The reasoning mode, learned (router/learning/modes.py): with a mode model the policy
# compares p_edge_ok direct (0.7 in SITUATION) with p_edge_ok step by step.
def test_without_a_mode_model_the_answer_format_decides_and_says_nothing() -> None:
    decided = plan(QUERY, dataclasses.replace(SITUATION, step_by_step_worth=False))
    assert (decided.reasoning_mode, decided.edge_max_tokens) == ("DIRECT", 32)
    assert decided.mode_why == ""


def test_the_mode_model_chooses_step_by_step_when_it_expects_more() -> None:
    worth_nothing = dataclasses.replace(SITUATION, step_by_step_worth=False)
    decided = plan(QUERY, dataclasses.replace(worth_nothing, p_edge_ok_step_by_step=0.9))
    assert (decided.reasoning_mode, decided.edge_max_tokens) == ("STEP_BY_STEP", 200)
    assert decided.mode_why == "p_edge_ok step by step 0.90 is above 0.70 direct"


def test_the_mode_model_chooses_direct_when_step_by_step_expects_no_more() -> None:
    # The format rule would reason (step_by_step_worth); the mode model overrules it.
    for p_step in (0.7, 0.4):
        decided = plan(QUERY, dataclasses.replace(SITUATION, p_edge_ok_step_by_step=p_step))
        assert (decided.reasoning_mode, decided.edge_max_tokens) == ("DIRECT", 32)
        assert decided.mode_why == f"p_edge_ok step by step {p_step:.2f} is not above 0.70 direct"


def test_step_by_step_that_does_not_fit_the_time_answers_directly_and_says_so() -> None:
    # 200 tokens step by step: 100 + 200 x 10 = 2,100 ms; the edge has 1,000 ms (no cloud).
    tight = dataclasses.replace(
        SITUATION, p_edge_ok_step_by_step=0.9, remaining_ms=1_000.0, cloud_available=False
    )
    decided = plan(QUERY, tight)
    assert (decided.reasoning_mode, decided.edge_max_tokens) == ("DIRECT", 32)
    assert decided.mode_why == (
        "p_edge_ok step by step 0.90 is above 0.70 direct, but 200 tokens step by step need "
        "about 2100 ms and 1000 ms remain"
    )


def test_exploration_answers_in_the_mode_not_chosen_when_both_fit() -> None:
    chosen_step = dataclasses.replace(SITUATION, p_edge_ok_step_by_step=0.9, explore_mode=True)
    decided = plan(QUERY, chosen_step)
    assert (decided.reasoning_mode, decided.edge_max_tokens) == ("DIRECT", 32)
    assert decided.mode_why == (
        "exploring the mode not chosen (p_edge_ok step by step 0.90 is above 0.70 direct)"
    )
    by_format = dataclasses.replace(SITUATION, step_by_step_worth=False, explore_mode=True)
    decided = plan(QUERY, by_format)
    assert decided.reasoning_mode == "STEP_BY_STEP"
    assert decided.mode_why == "exploring the mode not chosen (the answer format rule)"


def test_exploration_never_takes_step_by_step_past_the_time() -> None:
    tight = dataclasses.replace(
        SITUATION, remaining_ms=1_000.0, cloud_available=False, explore_mode=True
    )
    decided = plan(QUERY, dataclasses.replace(tight, step_by_step_worth=False))
    assert decided.reasoning_mode == "DIRECT"


def test_the_tier_is_chosen_with_the_better_modes_p_edge_ok_when_it_fits() -> None:
    hard_direct = dataclasses.replace(SITUATION, p_edge_ok=0.2, p_edge_ok_step_by_step=0.8)
    decided = plan(QUERY, hard_direct)
    assert (decided.first, decided.reasoning_mode, decided.p_edge_ok) == (
        "EDGE",
        "STEP_BY_STEP",
        0.8,
    )
    assert "p_edge_ok 0.80 meets the pre-generation threshold 0.50" in decided.why
    # 200 tokens step by step (2,100 ms) do not fit 1,500 ms: the direct answer's 0.2 counts.
    decided = plan(QUERY, dataclasses.replace(hard_direct, remaining_ms=1_500.0))
    assert (decided.first, decided.p_edge_ok) == ("CLOUD", 0.2)


def test_step_by_step_must_beat_direct_by_the_mode_models_margin() -> None:
    margined = dataclasses.replace(SITUATION, p_edge_ok_step_by_step=0.8, step_by_step_margin=0.15)
    decided = plan(QUERY, margined)
    assert (decided.reasoning_mode, decided.p_edge_ok) == ("DIRECT", 0.7)
    assert decided.mode_why == "p_edge_ok step by step 0.80 is not above 0.70 direct + margin 0.15"
    decided = plan(QUERY, dataclasses.replace(margined, step_by_step_margin=0.05))
    assert (decided.reasoning_mode, decided.p_edge_ok) == ("STEP_BY_STEP", 0.8)
