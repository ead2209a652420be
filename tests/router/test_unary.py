"""A unary request (`Router.generate`) is finished when its answer is returned: nothing of
it is left for the event loop to close later (a suspended async generator would be closed
by the loop's finalizer hook, at a task and a wake-up of the loop on every request). Its
cloud call is not streamed: only the answer is kept."""

from __future__ import annotations

import json
from collections.abc import Callable

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router.validate import to_query
from sllm.tracing import Tracing
from sllm.v1 import router_pb2
from tests.cloud.fault_proxy import FaultProxy, Status, proxying
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.router.requests import EASY, ask, route_name


async def test_a_unary_request_has_ended_its_span_when_generate_returns(
    router_factory: RouterFactory,
) -> None:
    exporter = InMemorySpanExporter()
    running = await router_factory(
        fake_edge=ScriptedEdge(),
        cloud=closed_cloud(),
        tracing=Tracing.to(exporter, service="sllm-router", batch=False),
    )
    router = running.server.router
    after_answer: list[Callable[[], None]] = []
    result = await router.generate(
        to_query(ask(), router.settings), after_answer=after_answer.append
    )
    # Before anything else runs on the loop, the request has ended: its trace has handed
    # over the spans to make once the answer has gone, and making them ends its span.
    assert len(after_answer) == 1
    after_answer[0]()
    routes = [span for span in exporter.get_finished_spans() if span.name == "sllm.route"]
    assert [span.attributes and span.attributes.get("sllm.route") for span in routes] == [
        result.route
    ]


def sent_stream_flags(proxy: FaultProxy) -> list[bool]:
    """`stream` in each chat completion request the cloud received."""
    return [
        json.loads(body)["stream"]
        for head, body in zip(proxy.heads, proxy.bodies, strict=True)
        if b"/chat/completions" in head.split(b"\r\n")[0]
    ]


async def test_a_unary_request_asks_the_cloud_for_its_answer_in_one_piece(
    router_factory: RouterFactory, standin_server: StandInServer
) -> None:
    async with proxying(standin_server.base_url) as proxy:
        running = await router_factory(
            fake_edge=ScriptedEdge(),
            cloud=standin_server.settings(
                base_url=proxy.base_url,
                backoff_initial_s=0.05,
                price_input_per_mtok=1_000.0,
                price_output_per_mtok=2_000.0,
            ),
            http=True,
        )
        # The first attempt gets a 503: the unary call is retried like a stream.
        proxy.inject(Status(503))
        response = await running.stub.Generate(ask(route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY))
        assert sent_stream_flags(proxy) == [False, False]

        assert route_name(response) == "CLOUD"
        assert response.text and response.completion_tokens > 0
        assert response.decision.timings.cloud_ms > 0
        # The usage the endpoint reported in its answer, priced.
        assert response.decision.cost_usd == pytest.approx(
            (response.prompt_tokens * 1_000.0 + response.completion_tokens * 2_000.0) / 1e6
        )

        streamed = [
            event
            async for event in running.stub.GenerateStream(
                ask(route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY)
            )
        ]
        assert sent_stream_flags(proxy)[2:] == [True]
        assert streamed[-1].final.text == response.text  # greedy: same answer

        # The HTTP door's `stream: false` is unary too.
        async with openai.AsyncOpenAI(
            base_url=f"{running.http_url}/v1", api_key="unused", max_retries=0
        ) as client:
            completion = await client.chat.completions.create(
                model="sllm-cloud",
                messages=[{"role": "user", "content": EASY}],
                max_tokens=16,
            )
        assert sent_stream_flags(proxy)[3:] == [False]
        assert completion.choices[0].message.content == response.text
