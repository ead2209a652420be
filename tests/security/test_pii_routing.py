"""Personal data stays on the edge, on a real router (real edge worker, the real cloud
stand-in, whose access log shows every completion it served): a prompt with planted PII
never reaches the cloud, through gRPC or HTTP, streamed or not, nor as a shadow call, and
the decision says which kinds were found; a clean prompt still goes to the cloud."""

from __future__ import annotations

import json
from typing import Any

import grpc
import openai
import pytest

from sllm.v1 import router_pb2
from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory
from tests.router.requests import ask, route_name

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"
PLANTED = {
    "email": "jane.doe@example.org",
    "phone": "+44 20 7946 0958",
    "credit_card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "employee_id": "EMP-123456",
}
PATTERNS = {"pii": {"patterns": {"employee_id": r"\bEMP-\d{6}\b"}}}


def with_pii(kind: str) -> str:
    return f"I am {PLANTED[kind]}. {QUESTION}"


async def test_grpc_keeps_pii_on_the_edge(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    # pre 1.0: every query goes to the cloud first, unless it may not.
    router = await real_router(pre=1.0, **PATTERNS)
    log = standin_server.access_log
    mark = log.mark()
    clean = await router.stub.Generate(ask(QUESTION))
    assert route_name(clean) == "CLOUD" and not clean.decision.pii_kinds
    assert len(log.completions(since=mark)) == 1

    mark = log.mark()
    for kind in PLANTED:
        response = await router.stub.Generate(ask(with_pii(kind)))
        assert route_name(response) == "EDGE", kind
        assert list(response.decision.pii_kinds) == [kind]
        assert f"the prompt holds personal data ({kind}), which stays on the edge" in (
            response.decision.reason
        )
    events = [event async for event in router.stub.GenerateStream(ask(with_pii("email")))]
    assert route_name(events[-1].final) == "EDGE"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await router.stub.Generate(
            ask(with_pii("iban"), route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY)
        )
    assert "personal data (iban)" in (error.value.details() or "")
    assert log.completions(since=mark) == []
    # Nor do the values reach the outcome log: stored prompts are off, answers masked.
    router.server.router.outcomes.flush()
    stored = json.dumps([dict(row) for row in router.server.router.outcomes.rows()])
    assert not [value for value in PLANTED.values() if value in stored]


async def test_http_keeps_pii_on_the_edge(door: Any, standin_server: StandInServer) -> None:
    _, client = await door(pre=1.0)
    log = standin_server.access_log
    mark = log.mark()
    messages = [{"role": "system", "content": f"The user's card is {PLANTED['credit_card']}."}]
    reply = await client.chat.completions.create(
        model="sllm-auto", messages=[*messages, {"role": "user", "content": QUESTION}]
    )
    decision = reply.model_extra["sllm"]["decision"]
    assert reply.model_extra["sllm"]["route"] == "EDGE"
    assert decision["pii_kinds"] == ["credit_card"]
    stream = await client.chat.completions.create(
        model="sllm-auto", messages=[{"role": "user", "content": with_pii("phone")}], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].model_extra["sllm"]["decision"]["pii_kinds"] == ["phone"]
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(
            model="sllm-cloud", messages=[{"role": "user", "content": with_pii("email")}]
        )
    assert log.completions(since=mark) == []

    clean = await client.chat.completions.create(
        model="sllm-auto", messages=[{"role": "user", "content": QUESTION}]
    )
    assert clean.model_extra["sllm"]["route"] == "CLOUD"
    assert len(log.completions(since=mark)) == 1


async def test_a_tenant_may_allow_the_cloud(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(pre=1.0, pii={"tenant_policy": {"research": "allow"}})
    mark = standin_server.access_log.mark()
    kept = await router.stub.Generate(ask(with_pii("email"), tenant="clinic"))
    allowed = await router.stub.Generate(ask(with_pii("email"), tenant="research"))
    assert route_name(kept) == "EDGE"
    assert route_name(allowed) == "CLOUD"
    # Found and said either way.
    assert list(allowed.decision.pii_kinds) == ["email"]
    assert "personal data" not in allowed.decision.reason
    assert len(standin_server.access_log.completions(since=mark)) == 1


async def test_shadow_exploration_never_sends_pii(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    # Every edge answer is accepted (thresholds 0) and drawn for a shadow call.
    router = await real_router(shadow_probability=1.0)
    mark = standin_server.access_log.mark()
    private = await router.stub.Generate(ask(with_pii("iban")))
    await router.server.router.shadow.drain()
    assert route_name(private) == "EDGE"
    assert standin_server.access_log.completions(since=mark) == []
    clean = await router.stub.Generate(ask(QUESTION))
    await router.server.router.shadow.drain()
    assert route_name(clean) == "EDGE"
    assert len(standin_server.access_log.completions(since=mark)) == 1


@pytest.mark.parametrize("mask", [True, False])
async def test_stored_prompts_are_masked_unless_told_not_to(
    real_router: RouterFactory, mask: bool
) -> None:
    router = await real_router(store_prompts=True, pii={"mask_stored": mask})
    await router.stub.Generate(ask(with_pii("email"), route_hint=router_pb2.ROUTE_HINT_EDGE_ONLY))
    outcomes = router.server.router.outcomes
    outcomes.flush()
    (row,) = list(outcomes.rows())
    if mask:
        assert row["prompt"] == f"I am [EMAIL]. {QUESTION}"
        assert "[EMAIL]" in row["messages_json"] and PLANTED["email"] not in row["messages_json"]
    else:
        assert row["prompt"] == with_pii("email")
