"""The reasoning mode through the router (router/policy.py): with a policy that has a mode
model, the edge reasons step by step where the model expects more of it, and the decision
record says why; mode exploration answers in the mode not chosen. The edge is scripted
(tests/fakes/edge.py) so that the mode each call asked for can be read back."""

from __future__ import annotations

from pathlib import Path

from sllm.v1 import common_pb2, router_pb2
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.learning.synthetic import DIRECT_QUESTION, STEPWISE_QUESTION
from tests.router.requests import ask

# The planted rule (tests/learning/synthetic.py): "total" asks for reasoning.
STEPWISE, DIRECT = STEPWISE_QUESTION, DIRECT_QUESTION


def _local(text: str) -> router_pb2.RouteRequest:
    # local_only: the edge answers whatever p_edge_ok says; FREE_TEXT, which the format
    # rule would answer directly; a budget with room for 128 tokens step by step.
    return ask(text, local_only=True, max_tokens=128, latency_budget_ms=60_000)


async def test_the_mode_model_picks_each_questions_mode_and_the_record_says_why(
    router_factory: RouterFactory, mode_rule_policy: Path
) -> None:
    edge = ScriptedEdge()
    router = await router_factory(fake_edge=edge, cloud=closed_cloud(), policy_dir=mode_rule_policy)
    stepwise = await router.stub.Generate(_local(STEPWISE))
    direct = await router.stub.Generate(_local(DIRECT))
    assert [call.reasoning_mode for call in edge.calls] == ["STEP_BY_STEP", "DIRECT"]
    assert stepwise.reasoning_mode == common_pb2.REASONING_MODE_STEP_BY_STEP
    assert "the edge answered step by step: p_edge_ok step by step " in stepwise.decision.reason
    assert " is above " in stepwise.decision.reason
    # The tier was chosen with the better mode's p_edge_ok, which the record keeps.
    assert stepwise.decision.p_edge_ok > 0.7
    assert direct.reasoning_mode == common_pb2.REASONING_MODE_DIRECT
    assert "the edge answered directly: p_edge_ok step by step " in direct.decision.reason
    assert " is not above " in direct.decision.reason
    assert direct.decision.p_edge_ok > 0.7


async def test_exploration_answers_in_the_other_mode_when_drawn(
    router_factory: RouterFactory, mode_rule_policy: Path
) -> None:
    edge = ScriptedEdge()
    router = await router_factory(
        fake_edge=edge, cloud=closed_cloud(), policy_dir=mode_rule_policy, mode_exploration=0.1
    )
    draws = iter([0.05, 0.5])
    router.server.router.draw = lambda: next(draws)
    explored = await router.stub.Generate(_local(STEPWISE))
    chosen = await router.stub.Generate(_local(STEPWISE))
    assert [call.reasoning_mode for call in edge.calls] == ["DIRECT", "STEP_BY_STEP"]
    assert "exploring the mode not chosen (p_edge_ok step by step" in explored.decision.reason
    assert "exploring" not in chosen.decision.reason


async def test_without_a_mode_model_the_answer_format_decides_as_before(
    router_factory: RouterFactory,
) -> None:
    edge = ScriptedEdge()
    router = await router_factory(fake_edge=edge, cloud=closed_cloud())
    free = await router.stub.Generate(_local(STEPWISE))
    number = await router.stub.Generate(
        ask(
            STEPWISE,
            local_only=True,
            max_tokens=128,
            latency_budget_ms=60_000,
            answer_format=common_pb2.ANSWER_FORMAT_NUMBER,
        )
    )
    assert [call.reasoning_mode for call in edge.calls] == ["DIRECT", "STEP_BY_STEP"]
    assert "p_edge_ok step by step" not in free.decision.reason + number.decision.reason
