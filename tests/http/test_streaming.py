"""Streaming when the router replaces text: an unmodified client never sees edge text
taken back (it is held until the cascade decides); one that sets `sllm.stream_resets`
gets it at once and a reset chunk before the replacement (real edge, real stand-in)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.cloud.fault_proxy import CutAfterEvents, FaultProxy
from tests.fixtures.cloud import StandInServer
from tests.fixtures.edge import EdgeWorkerProcess
from tests.fixtures.router import RouterFactory
from tests.http.conftest import DoorFactory, OpenAIFor
from tests.http.requests import complete, sllm_field

pytestmark = pytest.mark.slow


async def _chunks(client: openai.AsyncOpenAI, **options: Any) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in await complete(client, stream=True, **options)]


def _text(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _reset_at(chunks: list[ChatCompletionChunk]) -> list[int]:
    return [i for i, c in enumerate(chunks) if "reset" in (c.model_extra or {}).get("sllm", {})]


async def test_without_resets_an_escalated_stream_shows_only_the_clouds_answer(
    door: DoorFactory,
) -> None:
    _, client = await door(pre=0.0, cascade=1.0)
    unary = await complete(client)
    held = await _chunks(client)
    assert sllm_field(held[-1])["route"] == "EDGE_THEN_CLOUD"
    assert not _reset_at(held)
    # Exactly the cloud's answer: the edge's (which came first) would stand before it.
    assert _text(held) == unary.choices[0].message.content


async def test_with_resets_edge_text_streams_then_a_reset_then_the_clouds_text(
    door: DoorFactory,
) -> None:
    _, client = await door(pre=0.0, cascade=1.0)
    unary = await complete(client)
    chunks = await _chunks(client, extra_headers={"x-sllm-stream-resets": "true"})
    [reset] = _reset_at(chunks)
    assert "below the cascade threshold" in sllm_field(chunks[reset])["reset"]["reason"]
    assert _text(chunks[:reset])
    assert _text(chunks[reset + 1 :]) == unary.choices[0].message.content
    assert sllm_field(chunks[-1])["route"] == "EDGE_THEN_CLOUD"


async def test_an_accepted_edge_answer_is_the_same_with_or_without_resets(
    door: DoorFactory,
) -> None:
    _, client = await door(pre=0.0, cascade=0.0)
    held = await _chunks(client)
    live = await _chunks(client, extra_body={"sllm": {"stream_resets": True}})
    assert _text(held) == _text(live) and _text(held)
    assert not _reset_at(live)


async def test_a_cloud_that_breaks_mid_stream_ends_an_unmodified_clients_stream_with_an_error(
    router_factory: RouterFactory,
    edge_server: EdgeWorkerProcess,
    standin_server: StandInServer,
    proxy: FaultProxy,
    openai_client: OpenAIFor,
) -> None:
    cloud = standin_server.settings(base_url=proxy.base_url, max_attempts=1)
    router = await router_factory(edge_target=edge_server.target, cloud=cloud, pre=1.0, http=True)
    client = openai_client(router)
    proxy.inject(CutAfterEvents(4))
    with pytest.raises(openai.APIError, match="replaced after it had been streamed"):
        await _chunks(client)
    proxy.inject(CutAfterEvents(4))
    chunks = await _chunks(client, extra_body={"sllm": {"stream_resets": True}})
    [reset] = _reset_at(chunks)
    assert "the cloud failed" in sllm_field(chunks[reset])["reset"]["reason"]
    last = sllm_field(chunks[-1])
    assert last["route"] == "EDGE_FALLBACK" and last["degraded"]
    assert _text(chunks[reset + 1 :])
