"""The HTTP door through the real `openai` client, over a real edge worker and the cloud
stand-in: unary and streamed answers, model names, sllm's options and what every answer
says of its decision."""

from __future__ import annotations

import httpx2
import pytest

from tests.fixtures.router import RouterFactory
from tests.http.conftest import DoorFactory
from tests.http.requests import complete, sllm_field, user

pytestmark = pytest.mark.slow


async def test_a_unary_answer_carries_its_decision_in_headers_body_and_usage(
    door: DoorFactory,
) -> None:
    _, client = await door(pre=0.0, cascade=0.0)
    raw = await client.chat.completions.with_raw_response.create(
        model="sllm-auto", messages=user(), max_tokens=16
    )
    response = raw.parse()
    sllm = sllm_field(response)
    assert response.choices[0].message.content
    assert response.model == "sllm-auto"
    assert raw.headers["x-sllm-route"] == sllm["route"] == "EDGE"
    assert raw.headers["x-sllm-reason"] == sllm["decision"]["reason"]
    assert raw.headers["x-sllm-policy-version"] == sllm["decision"]["policy_version"]
    assert raw.headers["x-sllm-request-id"] == response.id == sllm["request_id"]
    assert "+test-0.0-0.0" in raw.headers["x-sllm-policy-version"]
    assert response.usage is not None
    assert response.usage.completion_tokens == sllm["completion_tokens"] > 0
    assert response.usage.prompt_tokens == sllm["prompt_tokens"] > 0
    assert sllm["decision"]["cost_usd"] == 0.0
    assert sllm["decision"]["edge_exit_reason"].startswith("EXIT_REASON_")


async def test_streamed_chunks_reassemble_to_the_unary_answer(door: DoorFactory) -> None:
    _, client = await door(pre=0.0, cascade=0.0)
    unary = await complete(client)
    chunks = [chunk async for chunk in await complete(client, stream=True)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == unary.choices[0].message.content
    assert len({chunk.id for chunk in chunks}) == 1
    last = chunks[-1]
    assert last.choices[0].finish_reason in ("stop", "length")
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert sllm_field(last)["route"] == "EDGE"
    assert sllm_field(last)["request_id"] == last.id


async def test_the_event_stream_ends_with_done(real_router: RouterFactory) -> None:
    router = await real_router(pre=0.0, cascade=0.0, http=True)
    body = {"model": "sllm-auto", "messages": user(), "max_tokens": 8, "stream": True}
    async with (
        httpx2.AsyncClient(base_url=router.http_url) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-sllm-policy-version"].endswith("+test-0.0-0.0")
        request_id = response.headers["x-sllm-request-id"]
        events = [line async for line in response.aiter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in events)
    assert request_id in events[-2]


async def test_the_model_name_picks_the_route_hint(
    door: DoorFactory,
) -> None:
    # The policy sends everything to the cloud first; sllm-edge keeps it at the edge.
    _, client = await door(pre=1.0, cascade=0.0)
    listed = [model.id async for model in client.models.list()]
    assert listed == ["sllm-auto", "sllm-edge", "sllm-cloud"]
    routes = {}
    for model in listed:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=user(), max_tokens=8
        )
        routes[model] = raw.headers["x-sllm-route"]
    assert routes == {"sllm-auto": "CLOUD", "sllm-edge": "EDGE", "sllm-cloud": "CLOUD"}
    edge_only = await client.chat.completions.create(
        model="sllm-edge", messages=user(), max_tokens=8
    )
    assert "EDGE_ONLY" in sllm_field(edge_only)["decision"]["reason"]


async def test_sllm_options_come_from_the_body_and_headers_and_headers_win(
    door: DoorFactory,
) -> None:
    router, client = await door(pre=0.0, cascade=0.0)
    margin = router.server.router.settings.reply_margin_ms
    from_body = await client.chat.completions.create(
        model="sllm-auto",
        messages=user("What is 12 + 30?"),
        max_tokens=8,
        user="team-a",
        extra_body={"sllm": {"latency_budget_ms": 20000, "answer_format": "NUMBER"}},
    )
    budget = sllm_field(from_body)["decision"]["budget"]
    assert budget["latency_budget_ms"] == 20000 - margin
    assert budget["latency_budget_source"] == "request"
    assert sllm_field(from_body)["final_answer"].isdigit()
    from_headers = await client.chat.completions.create(
        model="sllm-auto",
        messages=user(),
        max_tokens=8,
        extra_body={"sllm": {"latency_budget_ms": 20000}},
        extra_headers={"x-sllm-latency-budget-ms": "15000", "x-sllm-local-only": "true"},
    )
    decision = sllm_field(from_headers)["decision"]
    assert decision["budget"]["latency_budget_ms"] == 15000 - margin
    assert "local_only" in decision["reason"]


async def test_text_parts_and_a_system_message_are_read(door: DoorFactory) -> None:
    _, client = await door(pre=0.0, cascade=0.0)
    response = await client.chat.completions.create(
        model="sllm-edge",
        messages=[
            {"role": "system", "content": "Answer in one word."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is the capital of"},
                    {"type": "text", "text": "France?"},
                ],
            },
        ],
        max_completion_tokens=8,
    )
    assert response.choices[0].message.content


async def test_an_escalation_through_the_sdk_returns_the_clouds_answer(door: DoorFactory) -> None:
    _, client = await door(pre=0.0, cascade=1.0)
    response = await complete(client)
    sllm = sllm_field(response)
    assert sllm["route"] == "EDGE_THEN_CLOUD"
    assert response.usage is not None
    # The usage is the cloud's, the tier that answered.
    assert sllm["decision"]["edge_exit_reason"] != "EXIT_REASON_UNSPECIFIED"
    assert response.usage.completion_tokens == sllm["completion_tokens"]


async def test_the_openapi_document_describes_the_door(real_router: RouterFactory) -> None:
    router = await real_router(http=True)
    async with httpx2.AsyncClient(base_url=router.http_url) as http:
        document = (await http.get("/openapi.json")).json()
    paths = document["paths"]
    assert set(paths) == {
        "/v1/chat/completions",
        "/v1/models",
        "/healthz",
        "/v1/feedback",
        "/status",
    }
    responses = paths["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in responses and {"4XX", "5XX"} <= set(responses)
