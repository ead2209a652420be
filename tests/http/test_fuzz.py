"""No input gets a 500 from the HTTP door: schemathesis generates requests from the door's
own OpenAPI document, conforming (bodies, `x-sllm-*` headers) and not, in a bounded run.
The tiers are closed ports, so a request the door accepts fails fast (503) instead of
generating: what is fuzzed is the door, not the models."""

from __future__ import annotations

import asyncio

import httpx2
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.fixtures.router import CLOSED_PORT_TARGET, RouterFactory, closed_cloud

# Every status the door documents; anything else (a 500 above all) is a bug.
DOCUMENTED = {200, 400, 404, 413, 429, 503, 504}
EXAMPLES = 300


def _routable(case: schemathesis.Case) -> schemathesis.Case:
    """A known model and a question last: the schema allows any model name and any order
    of messages, so few generated bodies would reach the router unsteered."""
    if isinstance(case.body, dict):
        messages = case.body.get("messages")
        case.body["model"] = "sllm-auto"
        case.body["messages"] = [
            *(messages if isinstance(messages, list) else []),
            {"role": "user", "content": "Is this a question?"},
        ]
    return case


async def test_no_generated_request_gets_a_500(router_factory: RouterFactory) -> None:
    router = await router_factory(
        edge_target=CLOSED_PORT_TARGET,
        cloud=closed_cloud(breaker_failure_threshold=1, breaker_cooldown_s=600.0),
        http_max_body_bytes=4000,
        http=True,
    )
    async with httpx2.AsyncClient(base_url=router.http_url) as http:
        document = (await http.get("/openapi.json")).json()
    operation = schemathesis.openapi.from_dict(document)["/v1/chat/completions"]["POST"]
    conforming = operation.as_strategy(GenerationMode.POSITIVE)
    cases = conforming | conforming.map(_routable) | operation.as_strategy(GenerationMode.NEGATIVE)
    seen: set[int] = set()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def post(case: schemathesis.Case) -> None:
        response = case.call(base_url=router.http_url, session=session)
        seen.add(response.status_code)
        assert response.status_code in DOCUMENTED, response.text
        if response.status_code != 200:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}

    # The router serves on this loop: the blocking client runs in a thread.
    with requests.Session() as session:
        await asyncio.to_thread(post)
    # The run reached past validation, not only into it.
    assert {400, 503} <= seen
