"""Machine-readable errors (google.rpc's error model): every failed call's status carries
details a program decodes with `rpc_status.from_call`, beside the message a person reads.
INVALID_ARGUMENT: a BadRequest naming the field; RESOURCE_EXHAUSTED: a RetryInfo and an
ErrorInfo; UNAVAILABLE and DEADLINE_EXCEEDED: an ErrorInfo with the reason, and the
budget's figures when the time was too short.

Through a real router over gRPC first: the scripted edge fails with the code a test
chooses (a real worker fails as it pleases), the cloud is a closed port or a proxy that
answers 429 itself. Then router/status.py's mapping with plain exceptions."""

from __future__ import annotations

import asyncio
import re
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from edge_worker.engine import QueueFull
from edge_worker.service import from_error as edge_status
from router import status
from router.active_policy import NoEarlierPolicy
from router.auth.access import Refused
from router.cascade import RouteFailed
from router.http.errors import unanswered
from router.outcomes import OutcomeLogFull
from router.policy import NoRoute, Shortfall
from sllm.settings import TokenGrant
from sllm.status import DEFAULT_RETRY_AFTER_S, DOMAIN
from sllm.v1 import common_pb2, router_pb2
from sllm.wire import InvalidRequest
from tests.cloud.fault_proxy import FaultProxy
from tests.cloud.fault_proxy import Status as HttpStatus
from tests.fakes.edge import EdgeReply, ScriptedEdge
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask

D = TypeVar("D", bound=Message)
BadRequest = error_details_pb2.BadRequest
ErrorInfo = error_details_pb2.ErrorInfo
RetryInfo = error_details_pb2.RetryInfo
TEST_TIMEOUT_S = 30.0
SMALLEST = re.compile(r"a latency budget of at least (\d+) ms would let a tier answer")


def detail(proto: status_pb2.Status, kind: type[D]) -> D:
    """The one detail of type `kind` in `proto`."""
    found = [item for item in proto.details if item.Is(kind.DESCRIPTOR)]
    assert len(found) == 1, f"{len(found)} {kind.__name__} in {proto}"
    message = kind()
    found[0].Unpack(message)
    return message


def decoded(error: grpc.RpcError) -> status_pb2.Status:
    """The status's details as a client decodes them; from_call also checks that the
    details' code and message are the call's."""
    proto = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert proto is not None, "the status carries no details"
    assert isinstance(proto, status_pb2.Status)
    return proto


async def failed(call: Any, request: Any, **kwargs: Any) -> grpc.aio.AioRpcError:
    async with asyncio.timeout(TEST_TIMEOUT_S):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request, **kwargs)
    return raised.value


async def failed_stream(
    router: RunningRouter, request: router_pb2.RouteRequest
) -> grpc.aio.AioRpcError:
    async with asyncio.timeout(TEST_TIMEOUT_S):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in router.stub.GenerateStream(request):
                pass
    return raised.value


def assert_reason(error: grpc.RpcError, code: grpc.StatusCode, reason: str) -> ErrorInfo:
    assert error.code() == code, error.details()
    info = detail(decoded(error), ErrorInfo)
    assert (info.reason, info.domain) == (reason, DOMAIN)
    return info


def retry_delay_s(error: grpc.RpcError) -> float:
    delay = detail(decoded(error), RetryInfo).retry_delay
    return delay.seconds + delay.nanos / 1e9


# INVALID_ARGUMENT ---------------------------------------------------------------------


def _message(role: int, content: str) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(role=role, content=content)  # type: ignore[arg-type]


BAD_FIELDS: dict[str, tuple[router_pb2.RouteRequest, str]] = {
    "messages empty": (router_pb2.RouteRequest(), "messages"),
    "max_tokens 0": (ask(max_tokens=0), "max_tokens"),
    "second role unknown": (
        router_pb2.RouteRequest(messages=[_message(common_pb2.ROLE_USER, "hi"), _message(7, "hi")]),
        "messages[1].role",
    ),
    "last message the assistant's": (
        router_pb2.RouteRequest(
            messages=[*ask().messages, _message(common_pb2.ROLE_ASSISTANT, "yo")]
        ),
        "messages[1]",
    ),
    "NUL in the content": (ask("a\x00b"), "messages[0].content"),
    "cost ceiling NaN": (ask(cost_ceiling_usd=float("nan")), "cost_ceiling_usd"),
    "latency budget -1": (ask(latency_budget_ms=-1), "latency_budget_ms"),
    "local_only with CLOUD_ONLY": (
        ask(local_only=True, route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY),
        "local_only",
    ),
    "unknown answer format": (ask(answer_format=42), "answer_format"),
}


@pytest.fixture
async def router(router_factory: RouterFactory) -> RunningRouter:
    return await router_factory(fake_edge=ScriptedEdge(), cloud=closed_cloud())


@pytest.mark.parametrize("case", BAD_FIELDS, ids=list(BAD_FIELDS))
async def test_a_bad_field_is_a_field_violation_naming_it(router: RunningRouter, case: str) -> None:
    request, field = BAD_FIELDS[case]
    for error in (
        await failed(router.stub.Generate, request),
        await failed_stream(router, request),
    ):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        violations = detail(decoded(error), BadRequest).field_violations
        assert [(v.field, v.description) for v in violations] == [(field, error.details())]


async def test_a_bad_feedback_score_names_the_score(router: RunningRouter) -> None:
    error = await failed(
        router.stub.Feedback, router_pb2.FeedbackRequest(request_id="r1", score=2.0)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violation = detail(decoded(error), BadRequest).field_violations[0]
    assert (violation.field, violation.description) == ("score", error.details())
    assert violation.description == "score is 2.0: it must be in [0, 1]"


async def test_bytes_that_are_no_request_are_a_violation_of_no_one_field(
    router: RunningRouter,
) -> None:
    # Invalid UTF-8 in a string: a client's protobuf cannot build it, so raw bytes go.
    invalid = ask("hello").SerializeToString().replace(b"hello", b"he\xfflo")
    raw = router.channel.unary_unary("/sllm.v1.Router/Generate")
    error = await failed(raw, invalid)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violation = detail(decoded(error), BadRequest).field_violations[0]
    assert (violation.field, violation.description) == ("", status.UNDECODABLE)


# No tier answers -----------------------------------------------------------------------


async def test_cloud_only_with_the_cloud_down_is_cloud_failed(router: RunningRouter) -> None:
    request = ask(route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY)
    error = await failed(router.stub.Generate, request)
    assert_reason(error, grpc.StatusCode.UNAVAILABLE, "CLOUD_FAILED")
    assert (error.details() or "").startswith("the cloud failed (")
    streamed = await failed_stream(router, request)
    assert_reason(streamed, grpc.StatusCode.UNAVAILABLE, "CLOUD_FAILED")


@pytest.mark.parametrize(
    ("edge_code", "code", "reason"),
    [
        ("INTERNAL", grpc.StatusCode.UNAVAILABLE, "EDGE_FAILED"),
        ("DEADLINE_EXCEEDED", grpc.StatusCode.DEADLINE_EXCEEDED, "EDGE_TIMED_OUT"),
        ("RESOURCE_EXHAUSTED", grpc.StatusCode.RESOURCE_EXHAUSTED, "EDGE_QUEUE_FULL"),
    ],
)
async def test_a_failing_edge_for_a_local_query_gives_the_edges_reason(
    router_factory: RouterFactory, edge_code: str, code: grpc.StatusCode, reason: str
) -> None:
    edge = ScriptedEdge([EdgeReply(fail=edge_code, deltas=())])
    router = await router_factory(fake_edge=edge, cloud=closed_cloud())
    for error in (
        await failed(router.stub.Generate, ask(local_only=True)),
        await failed_stream(router, ask(local_only=True)),
    ):
        assert_reason(error, code, reason)
        assert error.details() == (
            f"the edge failed (edge {edge_code}: scripted failure) and the query is local_only"
        )
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            # Busy: the same query may pass later, after the default wait.
            assert retry_delay_s(error) == DEFAULT_RETRY_AFTER_S


async def test_a_local_query_with_the_edge_down_is_no_tier(router_factory: RouterFactory) -> None:
    edge = ScriptedEdge(is_healthy=False)
    router = await router_factory(fake_edge=edge, cloud=closed_cloud(), health_interval_s=60.0)
    # The health check the router runs as it starts, in the background, sees it down.
    for _ in range(200):
        if not router.server.router.edge_available:
            break
        await asyncio.sleep(0.01)
    error = await failed(router.stub.Generate, ask(local_only=True))
    info = assert_reason(error, grpc.StatusCode.UNAVAILABLE, "NO_TIER")
    assert error.details() == (
        "no tier can answer: the edge worker is unavailable, and the query is local_only"
    )
    assert dict(info.metadata) == {}
    assert edge.calls == []


async def test_a_budget_too_small_gives_the_budget_that_would_do(
    router_factory: RouterFactory,
) -> None:
    edge = ScriptedEdge()
    router = await router_factory(fake_edge=edge, cloud=closed_cloud(), pre=0.0)
    error = await failed(router.stub.Generate, ask(latency_budget_ms=1))
    info = assert_reason(error, grpc.StatusCode.DEADLINE_EXCEEDED, "BUDGET_TOO_SMALL")
    found = SMALLEST.search(error.details() or "")
    assert found, error.details()
    figures = {name: int(value) for name, value in info.metadata.items()}
    assert set(figures) == {"min_budget_ms", "edge_min_ms", "cloud_min_ms", "remaining_ms"}
    assert figures["min_budget_ms"] == int(found[1])
    assert figures["min_budget_ms"] == min(figures["edge_min_ms"], figures["cloud_min_ms"])
    assert figures["remaining_ms"] <= 1
    # The figure is what it says: that budget lets the edge answer.
    await router.stub.Generate(ask(latency_budget_ms=figures["edge_min_ms"]))
    assert len(edge.calls) == 1


async def test_a_rate_limited_cloud_says_retry_after_what_the_cloud_asked(
    router_factory: RouterFactory,
) -> None:
    # Every request is answered 429 by the proxy itself: nothing behind it is reached.
    proxy = await FaultProxy("127.0.0.1", 9).start()
    try:
        proxy.inject(*[HttpStatus(429, retry_after="2.5")] * 3)
        router = await router_factory(
            fake_edge=ScriptedEdge(), cloud=closed_cloud(base_url=proxy.base_url)
        )
        error = await failed(router.stub.Generate, ask(route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY))
    finally:
        await proxy.aclose()
    assert_reason(error, grpc.StatusCode.RESOURCE_EXHAUSTED, "CLOUD_RATE_LIMITED")
    assert retry_delay_s(error) == 2.5


# UNAUTHENTICATED, PERMISSION_DENIED ---------------------------------------------------


async def test_refusals_say_which_rule_refused(router_factory: RouterFactory) -> None:
    router = await router_factory(
        fake_edge=ScriptedEdge(),
        cloud=closed_cloud(),
        tokens=[
            TokenGrant(token="app-token-0123456789", tenant="app"),
            TokenGrant(token="labels-token-0123456789", tenant="labels", roles=["feedback"]),
        ],
    )

    def bearer(token: str) -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {token}"),)

    cases = [
        (None, ask(), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
        ("not-a-token", ask(), grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID"),
        ("labels-token-0123456789", ask(), grpc.StatusCode.PERMISSION_DENIED, "ROLE_MISSING"),
        (
            "app-token-0123456789",
            ask(tenant="other"),
            grpc.StatusCode.PERMISSION_DENIED,
            "TENANT_MISMATCH",
        ),
    ]
    for token, request, code, reason in cases:
        metadata = bearer(token) if token else None
        error = await failed(router.stub.Generate, request, metadata=metadata)
        assert_reason(error, code, reason)


# router/status.py with plain exceptions -----------------------------------------------


def test_an_invalid_request_is_a_bad_request_for_its_field() -> None:
    proto = status.from_error(InvalidRequest("max_tokens is 0: it must be ...", field="max_tokens"))
    assert proto.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert proto.message == "max_tokens is 0: it must be ..."
    violation = detail(proto, BadRequest).field_violations[0]
    assert (violation.field, violation.description) == ("max_tokens", proto.message)
    assert len(proto.details) == 1


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (NoRoute("no tier can answer: ..."), grpc.StatusCode.UNAVAILABLE, "NO_TIER"),
        (
            NoRoute("...", "deadline", shortfall=Shortfall(115, 115, None, 50)),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "BUDGET_TOO_SMALL",
        ),
        (RouteFailed("..."), grpc.StatusCode.UNAVAILABLE, "NO_TIER"),
        (
            RouteFailed("...", "unavailable", reason="EDGE_FAILED"),
            grpc.StatusCode.UNAVAILABLE,
            "EDGE_FAILED",
        ),
        (
            RouteFailed("...", "deadline", reason="CLOUD_TIMED_OUT"),
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "CLOUD_TIMED_OUT",
        ),
        (
            RouteFailed("...", "saturated", reason="EDGE_QUEUE_FULL"),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "EDGE_QUEUE_FULL",
        ),
        (OutcomeLogFull("behind"), grpc.StatusCode.RESOURCE_EXHAUSTED, "OUTCOME_LOG_FULL"),
        (
            Refused("no token", "unauthenticated", "TOKEN_MISSING"),
            grpc.StatusCode.UNAUTHENTICATED,
            "TOKEN_MISSING",
        ),
        (
            Refused("not yours", "permission_denied", "TENANT_MISMATCH"),
            grpc.StatusCode.PERMISSION_DENIED,
            "TENANT_MISMATCH",
        ),
    ],
)
def test_each_failure_has_its_code_and_reason(
    error: Exception, code: grpc.StatusCode, reason: str
) -> None:
    assert isinstance(error, NoRoute | RouteFailed | OutcomeLogFull | Refused)
    proto = status.from_error(error)
    assert (proto.code, proto.message) == (code.value[0], str(error))
    info = detail(proto, ErrorInfo)
    assert (info.reason, info.domain) == (reason, DOMAIN)
    retrying = [item for item in proto.details if item.Is(RetryInfo.DESCRIPTOR)]
    assert len(retrying) == (code == grpc.StatusCode.RESOURCE_EXHAUSTED)


def test_a_budget_too_small_carries_the_figures_known() -> None:
    error = NoRoute("...", "deadline", shortfall=Shortfall(115, 115, None, 50))
    figures = dict(detail(status.from_error(error), ErrorInfo).metadata)
    # The cloud may not answer this query: no figure for it.
    assert figures == {"min_budget_ms": "115", "edge_min_ms": "115", "remaining_ms": "50"}


def test_both_doors_tell_a_client_to_wait_as_long() -> None:
    asked = RouteFailed("...", "saturated", reason="CLOUD_RATE_LIMITED", retry_after_s=2.5)
    unsaid = RouteFailed("...", "saturated", reason="EDGE_QUEUE_FULL")
    for error, grpc_delay, header in ((asked, 2.5, "3"), (unsaid, DEFAULT_RETRY_AFTER_S, "1")):
        delay = detail(status.from_error(error), RetryInfo).retry_delay
        assert delay.seconds + delay.nanos / 1e9 == grpc_delay
        assert unanswered(error).headers["retry-after"] == header


def test_a_policy_rollback_without_an_earlier_policy_has_no_details() -> None:
    proto = status.from_error(NoEarlierPolicy("no earlier policy"))
    assert proto.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert list(proto.details) == []


def test_the_edge_workers_errors() -> None:
    busy = edge_status(QueueFull("the edge worker is busy: 2 requests already wait"))
    assert busy.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert detail(busy, ErrorInfo).reason == "EDGE_QUEUE_FULL"
    assert detail(busy, RetryInfo).retry_delay.seconds == DEFAULT_RETRY_AFTER_S
    bad = edge_status(InvalidRequest("reasoning_mode is 7: ...", field="reasoning_mode"))
    assert detail(bad, BadRequest).field_violations[0].field == "reasoning_mode"
    broken = edge_status(RuntimeError("boom"))
    assert broken.code == grpc.StatusCode.INTERNAL.value[0]
    assert broken.message == "generation failed: RuntimeError('boom')"
