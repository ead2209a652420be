"""sllm.client against a real router served on 127.0.0.1 (tests/fixtures/router.py) with a
scripted edge (tests/fakes/edge.py: the route depends on the edge answer's exit reason and
confidence, which are chosen there) and the cloud closed, or the real cloud stand-in where
it must answer: both clients' calls, the typed answers and decision, a streamed reset, the
deadline sent, errors, tokens and TLS, and `sllm ask` / `sllm router rollback` on it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from router.query import Query
from router.record import RouteResult
from sllm import children
from sllm.chat import ChatMessage
from sllm.client import (
    NETWORK_MARGIN_S,
    AsyncRouterClient,
    Decision,
    Delta,
    ErrorDetails,
    FieldViolation,
    Reset,
    Result,
    RouterClient,
    RouterError,
)
from sllm.settings import TokenGrant
from sllm.v1 import router_pb2, router_pb2_grpc
from tests.fakes.edge import EdgeReply, ScriptedEdge
from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.security.pki import Pki, make_pki

QUESTION = "What is the capital of France? Answer in one word."
STREAMED = EdgeReply(text="Paris.", final_answer="Paris.", deltas=("Par", "is", "."))
ADMIN = "admin-token-0123456789"


async def edge_router(router_factory: RouterFactory, **settings: Any) -> RunningRouter:
    """The scripted edge's answer ("Paris") is kept: the cloud, closed, is never asked."""
    return await router_factory(fake_edge=ScriptedEdge(), cloud=closed_cloud(), **settings)


def edge_calls(router: RunningRouter) -> list[Any]:
    edge = router.server.router.edge
    assert isinstance(edge, ScriptedEdge)
    return edge.calls


def check_edge_answer(result: Result) -> None:
    assert isinstance(result, Result) and isinstance(result.decision, Decision)
    assert (result.text, result.final_answer, result.route) == ("Paris", "Paris", "EDGE")
    assert result.reasoning_mode in ("DIRECT", "STEP_BY_STEP") and not result.degraded
    assert result.request_id and result.completion_tokens == 1
    decision = result.decision
    assert decision.reason.startswith("EDGE: ")
    assert (decision.pre_generation_threshold, decision.cascade_threshold) == (0.0, 0.0)
    assert decision.p_edge_ok_after is not None and 0.0 <= decision.p_edge_ok_after <= 1.0
    assert decision.edge_exit_reason == "STOP"
    # The scripted edge reports no confidence score: 0, but present.
    assert decision.edge_confidence == 0.0
    assert decision.budget.cost_ceiling_usd is None
    assert decision.budget.tenant_budget_remaining_usd is None
    assert decision.timings.total_ms > 0 and decision.timings.cloud_ms == 0.0
    assert (decision.edge_error, decision.cloud_error, decision.pii_kinds) == ("", "", ())
    assert "+test-0.0-0.0" in decision.policy_version


async def test_async_generate_takes_a_string_and_answers_with_the_typed_decision(
    router_factory: RouterFactory,
) -> None:
    router = await edge_router(router_factory)
    async with AsyncRouterClient(router.target) as client:
        result = await client.generate(QUESTION, max_tokens=16, answer_format="YES_NO")
    check_edge_answer(result)
    assert result.decision.budget.latency_budget_source == "default"
    [call] = edge_calls(router)
    assert call.messages == [ChatMessage("user", QUESTION)]
    assert call.answer_format == "YES_NO"


async def test_sync_generate_takes_dicts_and_chat_messages(router_factory: RouterFactory) -> None:
    router = await edge_router(router_factory)
    messages: list[ChatMessage | dict[str, str]] = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hello"},
        ChatMessage("assistant", "Hi."),
        {"role": "user", "content": QUESTION},
    ]

    def generate() -> Result:
        # A blocking call: in a thread, since the router serves on this test's event loop.
        with RouterClient(router.target) as client:
            return client.generate(messages, max_tokens=16, local_only=True, tenant="acme")

    check_edge_answer(await asyncio.to_thread(generate))
    [call] = edge_calls(router)
    assert [(m.role, m.content) for m in call.messages] == [
        ("system", "Answer briefly."),
        ("user", "Hello"),
        ("assistant", "Hi."),
        ("user", QUESTION),
    ]
    with RouterClient(router.target) as client, pytest.raises(ValueError, match=r"messages\[0\]"):
        client.generate([{"role": "bot", "content": "?"}])


async def test_stream_surfaces_the_reset_of_an_escalation_then_the_clouds_text(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    # The cascade threshold 1.0 turns every edge answer down: the router escalates after
    # the edge's three deltas were sent, and the stand-in answers.
    router = await router_factory(
        fake_edge=ScriptedEdge([STREAMED]), cloud=standin_server.settings(), cascade=1.0
    )
    async with AsyncRouterClient(router.target) as client:
        events = [event async for event in client.stream(QUESTION, max_tokens=4)]
    assert events[:3] == [Delta("Par", "EDGE"), Delta("is", "EDGE"), Delta(".", "EDGE")]
    reset = events[3]
    assert isinstance(reset, Reset) and "below the cascade threshold 1.00" in reset.reason
    cloud, result = events[4:-1], events[-1]
    assert cloud and all(isinstance(e, Delta) and e.tier == "CLOUD" for e in cloud)
    assert isinstance(result, Result) and result.route == "EDGE_THEN_CLOUD"
    assert "".join(e.text for e in cloud if isinstance(e, Delta)) == result.text
    assert result.reasoning_mode is None  # the cloud's answer
    assert result.decision.edge_exit_reason == "STOP" and result.decision.cloud_error == ""

    def stream() -> list[object]:
        with RouterClient(router.target) as client:
            return list(client.stream(QUESTION, max_tokens=4))

    kinds = [type(event) for event in await asyncio.to_thread(stream)]
    assert kinds[:4] == [Delta, Delta, Delta, Reset] and kinds[-1] is Result


async def test_the_deadline_is_the_budget_plus_the_network_margin(
    router_factory: RouterFactory,
) -> None:
    router = await edge_router(router_factory)
    pipeline = router.server.router
    seen: list[float | None] = []
    generate = pipeline.generate

    async def spy(query: Query, **options: Any) -> RouteResult:
        seen.append(options.get("grpc_remaining_s"))  # what the servicer's context said
        return await generate(query, **options)

    pipeline.generate = spy  # type: ignore[method-assign]
    async with AsyncRouterClient(router.target, timeout_s=60) as client:
        budgeted = await client.generate(QUESTION, latency_budget_ms=1500)
        timed = await client.generate(QUESTION, timeout_s=3)
        capped = await client.generate(QUESTION, latency_budget_ms=5000, timeout_s=2)
    async with AsyncRouterClient(router.target) as client:
        unbounded = await client.generate(QUESTION)
    margin_s = NETWORK_MARGIN_S
    # gRPC sends a deadline rounded up by up to 1% (router/budget.py).
    assert seen[0] is not None and 1.5 < seen[0] <= (1.5 + margin_s) * 1.01
    assert budgeted.decision.budget.latency_budget_source == "request"
    # No budget: the timeout is the deadline, which the router plans with.
    assert seen[1] is not None and 2.5 < seen[1] <= 3.0 * 1.01
    assert timed.decision.budget.latency_budget_source == "grpc_deadline"
    assert 2500 < timed.decision.budget.latency_budget_ms < 3000
    # A timeout shorter than the budget caps the deadline.
    assert seen[2] is not None and seen[2] <= 2.0 * 1.01
    assert capped.decision.budget.latency_budget_source == "grpc_deadline"
    assert seen[3] is None
    assert unbounded.decision.budget.latency_budget_source == "default"


async def test_a_bad_request_raises_a_router_error_with_its_code_and_message(
    router_factory: RouterFactory,
) -> None:
    router = await edge_router(router_factory)
    async with AsyncRouterClient(router.target) as client:
        with pytest.raises(RouterError) as error:
            await client.generate(QUESTION, max_tokens=0)
        with pytest.raises(RouterError) as streamed:
            async for _ in client.stream(QUESTION, latency_budget_ms=-5000):
                pass
    assert error.value.code == "INVALID_ARGUMENT"
    assert error.value.message == "max_tokens is 0: it must be between 1 and 8192"
    assert str(error.value) == f"INVALID_ARGUMENT: {error.value.message}"
    assert streamed.value.code == "INVALID_ARGUMENT"
    assert streamed.value.message.startswith("latency_budget_ms is -5000: it must be > 0")

    def unreachable() -> None:
        with RouterClient("127.0.0.1:9", timeout_s=5) as client:
            client.policy()

    with pytest.raises(RouterError) as down:
        await asyncio.to_thread(unreachable)
    assert down.value.code == "UNAVAILABLE" and down.value.details == ErrorDetails()


async def test_feedback_policy_and_rollback(router_factory: RouterFactory) -> None:
    router = await edge_router(router_factory)
    async with AsyncRouterClient(router.target) as client:
        result = await client.generate(QUESTION)
        await client.feedback(result.request_id, 1.0, "gold")
        with pytest.raises(RouterError) as unknown:
            await client.feedback("no-such-request", 0.5)
        policy = await client.policy()
        with pytest.raises(RouterError) as no_earlier:
            await client.rollback()
    assert unknown.value.code == "NOT_FOUND"
    assert policy.version == result.decision.policy_version
    assert (policy.pre_generation_threshold, policy.cascade_threshold) == (0.0, 0.0)
    assert isinstance(policy.loaded_at, datetime) and policy.loaded_at.tzinfo is not None
    assert policy.stats.requests >= 1 and policy.stats.route_share["EDGE"] == 1.0
    assert no_earlier.value.code == "FAILED_PRECONDITION"

    def sync_policy() -> str:
        with RouterClient(router.target) as client:
            client.feedback(result.request_id, 0.0, "judge")
            return client.policy().version

    assert await asyncio.to_thread(sync_policy) == policy.version


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_token_and_tls(router_factory: RouterFactory, pki: Pki) -> None:
    router = await edge_router(
        router_factory,
        tls=pki.server_tls(),
        tokens=[TokenGrant(token=ADMIN, tenant="ops", roles=["admin"])],
    )
    async with AsyncRouterClient(router.target, token=ADMIN, tls=pki.ca) as client:
        check_edge_answer(await client.generate(QUESTION))
        assert (await client.policy()).version
    async with AsyncRouterClient(router.target, tls=str(pki.ca)) as client:
        with pytest.raises(RouterError) as anonymous:
            await client.generate(QUESTION)
    assert anonymous.value.code == "UNAUTHENTICATED"
    assert "authorization: Bearer <token>" in anonymous.value.message
    # Plaintext to a TLS port, or TLS trusting the system's CAs only: no connection.
    for tls in (False, True):
        async with AsyncRouterClient(router.target, token=ADMIN, tls=tls, timeout_s=5) as client:
            with pytest.raises(RouterError) as refused:
                await client.generate(QUESTION)
        assert refused.value.code == "UNAVAILABLE"


async def test_mutual_tls_with_the_clients_certificate(
    router_factory: RouterFactory, pki: Pki
) -> None:
    router = await edge_router(router_factory, tls=pki.server_tls(mutual=True))

    def generate() -> Result:
        with RouterClient(router.target, tls=pki.client_tls(pki.client)) as client:
            return client.generate(QUESTION)

    check_edge_answer(await asyncio.to_thread(generate))


async def sllm(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    # A child process: a blocking one would stall this loop, which serves the router.
    process = await children.create_subprocess_exec(
        sys.executable,
        "-m",
        "sllm",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_sllm_ask_and_rollback_send_the_token_over_tls(
    router_factory: RouterFactory, pki: Pki
) -> None:
    router = await router_factory(
        fake_edge=ScriptedEdge([STREAMED]),
        cloud=closed_cloud(),
        tls=pki.server_tls(),
        tokens=[TokenGrant(token=ADMIN, tenant="ops", roles=["admin"])],
    )
    connection = ("--target", router.target, "--ca-file", str(pki.ca))
    token = {"SLLM_CLIENT__TOKEN": ADMIN}
    code, out, err = await sllm("ask", *connection, "--budget-ms", "20000", QUESTION, env=token)
    assert code == 0, err
    assert out.startswith("Paris.\n\nanswer       Paris.\nroute        EDGE, DIRECT\n")
    for label in ("why", "p_edge_ok", "budget", "edge", "timings", "cost"):
        assert f"\n{label} " in out
    assert "ms (request); estimates:" in out and "exit STOP, confidence" in out

    code, out, err = await sllm("ask", *connection, "--stream", QUESTION, env=token)
    assert code == 0, err
    assert out.startswith("Paris.\n\nanswer       Paris.\nroute        EDGE")

    code, out, err = await sllm("ask", *connection, QUESTION)
    assert (code, out) == (1, "")
    assert err.startswith("sllm ask: UNAUTHENTICATED: ")
    # The admin's token reaches the rollback, which has no earlier policy to return to.
    code, out, err = await sllm("router", "rollback", *connection, env=token)
    assert code == 1 and err.startswith("sllm router rollback: FAILED_PRECONDITION: ")


class DetailedErrors(router_pb2_grpc.RouterServicer):
    """Why a fake servicer: it sends each kind of google.rpc detail the client decodes, all
    at once and on demand, which no real router error does (each sends the ones it has);
    and a plain status, as routers from before the details send."""

    async def Generate(self, request: router_pb2.RouteRequest, context: Any) -> Any:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field="messages[0].content", description="it is empty"
        )
        status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="come back later")
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        status.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=Duration(seconds=2, nanos=500_000_000))
        )
        status.details.add().Pack(
            error_details_pb2.ErrorInfo(
                reason="EDGE_QUEUE_FULL", domain="sllm.dev", metadata={"tier": "edge"}
            )
        )
        await context.abort_with_status(rpc_status.to_status(status))

    async def GetPolicy(self, request: router_pb2.GetPolicyRequest, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "no policy here")


@pytest.fixture
async def detailed_errors() -> Any:
    server = grpc.aio.server()
    router_pb2_grpc.add_RouterServicer_to_server(DetailedErrors(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(grace=None)


async def test_error_details_are_decoded_when_sent(detailed_errors: str) -> None:
    def sync_error(call: Callable[[RouterClient], object]) -> RouterError:
        with RouterClient(detailed_errors) as client:
            try:
                call(client)
            except RouterError as error:
                return error
        raise AssertionError("no RouterError")

    expected = ErrorDetails(
        field_violations=(FieldViolation("messages[0].content", "it is empty"),),
        retry_after_s=2.5,
        reason="EDGE_QUEUE_FULL",
        domain="sllm.dev",
        metadata={"tier": "edge"},
    )
    async with AsyncRouterClient(detailed_errors) as client:
        with pytest.raises(RouterError) as detailed:
            await client.generate(QUESTION)
        with pytest.raises(RouterError) as plain:
            await client.policy()
    assert (detailed.value.code, detailed.value.message) == (
        "RESOURCE_EXHAUSTED",
        "come back later",
    )
    assert detailed.value.details == expected
    assert (plain.value.code, plain.value.details) == ("UNAVAILABLE", ErrorDetails())

    sync = await asyncio.to_thread(sync_error, lambda client: client.generate(QUESTION))
    assert sync.details == expected
    sync = await asyncio.to_thread(sync_error, lambda client: list(client.stream(QUESTION)))
    assert sync.code == "UNIMPLEMENTED"
