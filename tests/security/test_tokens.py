"""API tokens at both doors of a running router (scripted edge, no cloud): the same
refusals over gRPC and HTTP (the real openai client), the token's tenant applied, health
open, and metrics behind a token when asked."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sllm.metrics_server import serve_metrics
from sllm.settings import TlsSettings, TokenGrant
from sllm.v1 import router_pb2
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask

APP = "app-token-0123456789"
LABELLER = "labeller-token-0123456789"
ADMIN = "admin-token-0123456789"
OPS = "ops-token-0123456789"
TOKENS = [
    TokenGrant(token=APP, tenant="app"),
    TokenGrant(token=LABELLER, tenant="labels", roles=["feedback"]),
    TokenGrant(token=ADMIN, tenant="ops", roles=["admin"]),
    TokenGrant(token=OPS, tenant="ops", roles=["metrics"]),
]
CHAT: dict[str, Any] = {
    "model": "sllm-auto",
    "messages": [{"role": "user", "content": "Capital of France?"}],
}


@pytest.fixture
async def router(router_factory: RouterFactory) -> RunningRouter:
    # The policy wants the cloud (pre 1.0); the tenant's budget of 0 keeps it away, so the
    # reason names the tenant the router charged.
    return await router_factory(
        fake_edge=ScriptedEdge(),
        cloud=closed_cloud(),
        http=True,
        pre=1.0,
        tokens=TOKENS,
        tenant_budget_usd=0.0,
    )


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def status_of(call: Any, request: Any, metadata: Any = None) -> grpc.StatusCode:
    try:
        await call(request, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_grpc_refuses_without_a_valid_token_and_checks_roles(router: RunningRouter) -> None:
    stub = router.stub
    calls = {
        "generate": (stub.Generate, ask()),
        "feedback": (stub.Feedback, router_pb2.FeedbackRequest(request_id="nope", score=1.0)),
        "policy": (stub.GetPolicy, router_pb2.GetPolicyRequest()),
        "rollback": (stub.RollbackPolicy, router_pb2.RollbackPolicyRequest()),
    }
    for call, request in calls.values():
        for metadata in (None, bearer("not-a-token"), (("authorization", APP),)):
            assert await status_of(call, request, metadata) == grpc.StatusCode.UNAUTHENTICATED
    streamed = stub.GenerateStream(ask())
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await streamed.read()
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED

    ok, denied = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED
    expected = {
        APP: {"generate": ok, "feedback": denied, "policy": ok, "rollback": denied},
        # Authorized: the unknown request_id is the one thing wrong.
        LABELLER: {
            "generate": denied,
            "feedback": grpc.StatusCode.NOT_FOUND,
            "policy": ok,
            "rollback": denied,
        },
        ADMIN: {
            "generate": ok,
            "feedback": grpc.StatusCode.NOT_FOUND,
            "policy": ok,
            "rollback": grpc.StatusCode.FAILED_PRECONDITION,
        },
    }
    for token, statuses in expected.items():
        for name, (call, request) in calls.items():
            assert await status_of(call, request, bearer(token)) == statuses[name], (token, name)

    # Health stays open: probes carry no token.
    health = health_pb2_grpc.HealthStub(router.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="sllm.v1.Router"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_grpc_requests_work_for_the_tokens_tenant_only(router: RunningRouter) -> None:
    stub = router.stub
    response = await stub.Generate(ask(), metadata=bearer(APP))
    assert "tenant 'app' has spent its cloud budget" in response.decision.reason
    same = await stub.Generate(ask(tenant="app"), metadata=bearer(APP))
    assert same.decision.reason == response.decision.reason
    for request in (stub.Generate(ask(tenant="ops"), metadata=bearer(APP)),):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await request
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "tenant 'ops' is not this token's" in (error.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in stub.GenerateStream(ask(tenant="ops"), metadata=bearer(APP)):
            pass
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    events = [event async for event in stub.GenerateStream(ask(), metadata=bearer(APP))]
    assert "tenant 'app'" in events[-1].final.decision.reason
    router.server.router.outcomes.flush()
    assert {row["tenant"] for row in router.server.router.outcomes.rows()} == {"app"}


@pytest.fixture
async def client_for(router: RunningRouter) -> AsyncIterator[Any]:
    clients: list[openai.AsyncOpenAI] = []

    def make(token: str) -> openai.AsyncOpenAI:
        clients.append(
            openai.AsyncOpenAI(base_url=f"{router.http_url}/v1", api_key=token, max_retries=0)
        )
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


async def test_http_refuses_as_openai_does(router: RunningRouter, client_for: Any) -> None:
    async with httpx.AsyncClient(base_url=router.http_url, timeout=10) as plain:
        for path in ("/v1/chat/completions", "/v1/feedback"):
            refused = await plain.post(path, json=CHAT)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["code"] == "invalid_api_key"
        for path in ("/v1/models", "/openapi.json", "/status", "/"):
            assert (await plain.get(path)).status_code == 401
        # Health stays open: probes carry no token.
        assert (await plain.get("/healthz")).json()["ready"] is True

    with pytest.raises(openai.AuthenticationError) as unauthenticated:
        await client_for("not-a-token").chat.completions.create(**CHAT)
    assert unauthenticated.value.code == "invalid_api_key"
    with pytest.raises(openai.PermissionDeniedError):
        await client_for(LABELLER).chat.completions.create(**CHAT)
    with pytest.raises(openai.PermissionDeniedError) as other_tenant:
        await client_for(APP).chat.completions.create(**CHAT, user="ops")
    assert "tenant 'ops' is not this token's" in other_tenant.value.message

    reply = await client_for(APP).chat.completions.create(**CHAT)
    reason = reply.model_extra["sllm"]["decision"]["reason"]
    assert "tenant 'app' has spent" in reason
    stream = await client_for(APP).chat.completions.create(**CHAT, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].model_extra["sllm"]["decision"]["reason"] == reason
    assert [model.id async for model in client_for(OPS).models.list()]

    feedback = {"request_id": reply.id, "score": 1.0}
    with pytest.raises(openai.PermissionDeniedError):
        await client_for(APP).post("/feedback", body=feedback, cast_to=object)
    await client_for(LABELLER).post("/feedback", body=feedback, cast_to=object)


def scrape(port: int, token: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert b"sllm_router_requests_total" in response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_metrics_can_require_a_token(router: RunningRouter) -> None:
    """What `serve` starts with router.metrics_require_token."""
    server, port = serve_metrics(
        "127.0.0.1", 0, TlsSettings(), check=router.server.router.access.metrics_status
    )
    try:
        assert scrape(port, None) == 401
        assert scrape(port, "not-a-token") == 401
        assert scrape(port, APP) == 403
        assert scrape(port, OPS) == 200
        assert scrape(port, ADMIN) == 200
    finally:
        server.shutdown()
