"""GenerateStream: edge deltas as they come, an explicit reset on escalation, then the
cloud's deltas, and the decision record in the final event (real edge, real stand-in)."""

from __future__ import annotations

import pytest

from sllm.v1 import router_pb2
from tests.fixtures.cloud import StandInServer
from tests.fixtures.edge import EdgeWorkerProcess
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.router.requests import ask, route_name

pytestmark = pytest.mark.slow


async def test_escalation_after_edge_text_sends_a_reset_then_cloud_deltas(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(pre=0.0, cascade=1.0)
    events = [event async for event in router.stub.GenerateStream(ask())]
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds.count("reset") == 1 and kinds[-1] == "final"
    reset_at = kinds.index("reset")
    before, after = events[:reset_at], events[reset_at + 1 : -1]
    assert before and all(e.delta.tier == router_pb2.TIER_EDGE for e in before)
    assert after and all(e.delta.tier == router_pb2.TIER_CLOUD for e in after)
    assert "below the cascade threshold" in events[reset_at].reset.reason
    final = events[-1].final
    assert route_name(final) == "EDGE_THEN_CLOUD"
    # What the client shows after the reset is exactly the answer returned.
    assert "".join(e.delta.text for e in after) == final.text


async def test_an_accepted_edge_answer_streams_without_a_reset(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(pre=0.0, cascade=0.0)
    events = [event async for event in router.stub.GenerateStream(ask())]
    kinds = [event.WhichOneof("event") for event in events]
    assert "reset" not in kinds and kinds[-1] == "final"
    final = events[-1].final
    assert route_name(final) == "EDGE"
    assert "".join(e.delta.text for e in events[:-1]) == final.text
    assert final.decision.reason


async def test_a_failed_escalation_resends_the_edge_answer_after_one_reset(
    router_factory: RouterFactory, edge_server: EdgeWorkerProcess
) -> None:
    router = await router_factory(
        edge_target=edge_server.target, cloud=closed_cloud(), pre=0.0, cascade=1.0
    )
    events = [event async for event in router.stub.GenerateStream(ask())]
    kinds = [event.WhichOneof("event") for event in events]
    # The cloud failed before sending any text: nothing more to take back.
    assert kinds.count("reset") == 1 and kinds[-1] == "final"
    final = events[-1].final
    assert route_name(final) == "EDGE_FALLBACK" and final.degraded
    after_reset = events[kinds.index("reset") + 1 : -1]
    assert [e.delta.tier for e in after_reset] == [router_pb2.TIER_EDGE]
    assert after_reset[0].delta.text == final.text
