"""A unary request (`Router.generate`) is finished when its answer is returned: nothing of
it is left for the event loop to close later (a suspended async generator would be closed
by the loop's finalizer hook, at a task and a wake-up of the loop on every request)."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router.validate import to_query
from sllm.tracing import Tracing
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.router import RouterFactory, closed_cloud
from tests.router.requests import ask


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
