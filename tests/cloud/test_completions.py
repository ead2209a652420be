"""Completions against the real stand-in server: text, usage, cost, streaming."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from cloud_adapter import CloudBadRequest, CloudChunk, CloudClient, CloudDeadlineExceeded
from sllm.chat import ChatMessage
from sllm.settings import ModelPrice
from tests.fixtures.cloud import StandInServer

QUESTION = [ChatMessage("user", "What is the capital of France?")]


@pytest.fixture
async def client(standin_server: StandInServer) -> AsyncIterator[CloudClient]:
    client = CloudClient(
        standin_server.settings(price_input_per_mtok=2.5, price_output_per_mtok=10.0)
    )
    yield client
    await client.aclose()


async def test_complete_returns_text_usage_and_cost(
    client: CloudClient, standin_server: StandInServer
) -> None:
    before = standin_server.access_log.mark()
    result = await client.complete(QUESTION, max_tokens=8, deadline=time.monotonic() + 30)

    assert result.text.strip()
    assert result.model == standin_server.model
    assert result.prompt_tokens > 5
    assert 1 <= result.completion_tokens <= 8
    assert not result.usage_estimated
    assert result.cost_usd == pytest.approx(
        (result.prompt_tokens * 2.5 + result.completion_tokens * 10.0) / 1e6
    )
    assert result.attempts == 1
    assert result.ttft_ms is None
    assert result.latency_ms > 0
    assert result.finish_reason in ("stop", "length")
    assert [r.status for r in standin_server.access_log.completions(since=before)] == [200]


async def test_max_tokens_caps_the_answer(client: CloudClient) -> None:
    result = await client.complete(QUESTION, max_tokens=2, deadline=time.monotonic() + 30)
    assert result.completion_tokens == 2
    assert result.finish_reason == "length"


async def test_stream_yields_deltas_then_the_result(client: CloudClient) -> None:
    chunks: list[CloudChunk] = [
        chunk
        async for chunk in client.stream(QUESTION, max_tokens=8, deadline=time.monotonic() + 30)
    ]

    deltas, last = chunks[:-1], chunks[-1]
    assert len(deltas) >= 2
    assert all(chunk.text and chunk.result is None for chunk in deltas)
    assert last.result is not None
    result = last.result
    assert result.text == "".join(chunk.text for chunk in deltas)
    # llama_cpp.server sends no usage in streams: one token per delta, prompt estimated.
    assert result.usage_estimated
    assert result.completion_tokens == len(deltas)
    assert result.prompt_tokens > 0
    assert result.cost_usd == pytest.approx(client.estimate_cost(result.prompt_tokens, len(deltas)))
    assert result.ttft_ms is not None
    assert 0 < result.ttft_ms <= result.latency_ms


async def test_stream_can_be_left_early(client: CloudClient) -> None:
    stream = client.stream(QUESTION, max_tokens=16, deadline=time.monotonic() + 30)
    async for chunk in stream:
        assert chunk.text
        break
    await stream.aclose()
    # The client is still usable: the abandoned stream's connection was released.
    result = await client.complete(QUESTION, max_tokens=2, deadline=time.monotonic() + 30)
    assert result.completion_tokens == 2


def test_estimate_cost_uses_per_model_prices(standin_server: StandInServer) -> None:
    client = CloudClient(
        standin_server.settings(
            model="gpt-4o",
            price_input_per_mtok=1.0,
            price_output_per_mtok=2.0,
            prices={
                "gpt-4o": ModelPrice(input_per_mtok=2.5, output_per_mtok=10.0),
                "gpt-4o-mini": ModelPrice(input_per_mtok=0.15, output_per_mtok=0.6),
            },
        )
    )
    assert client.estimate_cost(1_000_000, 0) == pytest.approx(2.5)
    assert client.estimate_cost(2_000, 1_000) == pytest.approx(0.005 + 0.01)
    # A dated name takes the longest listed prefix; an unlisted model, the defaults.
    assert client.estimate_cost(1_000_000, 1_000_000, model="gpt-4o-mini-2024-07-18") == (
        pytest.approx(0.75)
    )
    assert client.estimate_cost(1_000_000, 1_000_000, model="other") == pytest.approx(3.0)
    assert client.estimate_cost(0, 0) == 0.0


async def test_a_call_without_time_left_is_not_started(
    client: CloudClient, standin_server: StandInServer
) -> None:
    before = standin_server.access_log.mark()
    with pytest.raises(CloudDeadlineExceeded, match="not started"):
        await client.complete(QUESTION, max_tokens=8, deadline=time.monotonic() + 0.01)
    with pytest.raises(CloudDeadlineExceeded, match="not started"):
        async for _ in client.stream(QUESTION, max_tokens=8, deadline=time.monotonic() - 1):
            pass
    assert standin_server.access_log.requests(since=before) == []


async def test_bad_requests_fail_before_any_io(client: CloudClient) -> None:
    with pytest.raises(CloudBadRequest, match="no messages"):
        await client.complete([], max_tokens=8, deadline=time.monotonic() + 30)
    with pytest.raises(CloudBadRequest, match="max_tokens"):
        await client.complete(QUESTION, max_tokens=0, deadline=time.monotonic() + 30)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_calls_are_counted_in_metrics(client: CloudClient) -> None:
    endpoint = client.endpoint
    calls = _sample("sllm_cloud_calls_total", endpoint=endpoint, outcome="ok")
    completion = _sample("sllm_cloud_tokens_total", endpoint=endpoint, kind="completion")
    cost = _sample("sllm_cloud_cost_usd_total", endpoint=endpoint)
    latencies = _sample("sllm_cloud_latency_seconds_count", endpoint=endpoint)

    result = await client.complete(QUESTION, max_tokens=3, deadline=time.monotonic() + 30)

    assert _sample("sllm_cloud_calls_total", endpoint=endpoint, outcome="ok") == calls + 1
    assert _sample("sllm_cloud_tokens_total", endpoint=endpoint, kind="completion") == (
        completion + result.completion_tokens
    )
    assert _sample("sllm_cloud_cost_usd_total", endpoint=endpoint) == pytest.approx(
        cost + result.cost_usd
    )
    assert _sample("sllm_cloud_latency_seconds_count", endpoint=endpoint) == latencies + 1
    assert _sample("sllm_cloud_breaker_state", endpoint=endpoint) == 0
