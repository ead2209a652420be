"""The edge worker inside the router's process (`edge_target = "in-process"`): the real
SmolLM2 loaded by the router itself, the real cloud stand-in, gRPC on 127.0.0.1. The same
routes, records and failures as with a worker over gRPC, and the worker's metrics are
served with the router's."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from prometheus_client import REGISTRY, generate_latest

from sllm.settings import IN_PROCESS, EdgeSettings
from sllm.v1 import common_pb2
from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.router.requests import ask, route_name

pytestmark = pytest.mark.slow


async def test_the_router_answers_with_its_own_model(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    router = await router_factory(
        edge_target=IN_PROCESS, cloud=standin_server.settings(), pre=0.0, cascade=0.0
    )
    mark = standin_server.access_log.mark()
    response = await router.stub.Generate(ask())
    assert route_name(response) == "EDGE", response.decision.reason
    assert response.text
    assert response.decision.edge_exit_reason != common_pb2.EXIT_REASON_UNSPECIFIED
    assert response.decision.timings.edge_ms > 0
    assert standin_server.access_log.completions(since=mark) == []

    streamed = [event async for event in router.stub.GenerateStream(ask())]
    deltas = "".join(e.delta.text for e in streamed if e.WhichOneof("event") == "delta")
    assert deltas == streamed[-1].final.text == response.text  # greedy: same answer

    metrics = generate_latest(REGISTRY).decode()
    assert 'sllm_edge_requests_total{outcome="ok"} 2.0' in metrics


async def test_a_prompt_too_long_for_the_edge_goes_to_the_cloud(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    router = await router_factory(
        edge_target=IN_PROCESS,
        edge=EdgeSettings(n_ctx=256),
        cloud=standin_server.settings(),
        pre=0.0,
    )
    response = await router.stub.Generate(ask("Why is the sky blue? " * 80))
    assert route_name(response) == "CLOUD"
    assert response.decision.edge_error.startswith("edge INVALID_ARGUMENT: ")
    assert "context" in response.decision.edge_error
    assert response.text
    metrics = generate_latest(REGISTRY).decode()
    assert 'sllm_edge_requests_total{outcome="invalid"} 1.0' in metrics


async def test_a_busy_edge_sends_the_query_to_the_cloud(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    router = await router_factory(
        edge_target=IN_PROCESS,
        edge=EdgeSettings(queue_size=0),
        cloud=standin_server.settings(),
        pre=0.0,
    )
    story = ask("Write a long story about a dragon.", max_tokens=400, local_only=True)
    long = router.stub.GenerateStream(story)
    assert (await long.read()).WhichOneof("event") == "delta"  # the model is busy from here
    response = await router.stub.Generate(ask())
    assert route_name(response) == "CLOUD"
    assert "RESOURCE_EXHAUSTED" in response.decision.edge_error
    long.cancel()
    # Cancelling the stream frees the model within a token: soon the edge answers again.
    for _ in range(40):
        try:
            response = await router.stub.Generate(ask(local_only=True))
            break
        except grpc.aio.AioRpcError as error:
            assert "RESOURCE_EXHAUSTED" in (error.details() or "")
            await asyncio.sleep(0.05)
    assert route_name(response) == "EDGE"


async def test_local_only_with_a_failing_in_process_edge_is_unavailable_with_the_reason(
    router_factory: RouterFactory,
) -> None:
    router = await router_factory(
        edge_target=IN_PROCESS, edge=EdgeSettings(n_ctx=256), cloud=closed_cloud()
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await router.stub.Generate(ask("Why is the sky blue? " * 80, local_only=True))
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "the edge failed (edge INVALID_ARGUMENT: " in (failure.value.details() or "")
