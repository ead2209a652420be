"""The replay cloud endpoint, started with `sllm bench replay-cloud` on 127.0.0.1 and called
through the project's own CloudClient (and plain HTTP where the client hides headers)."""

from __future__ import annotations

import asyncio
import csv
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bench.replay.latency import Latency
from bench.replay.process import ReplayCloudProcess, start_replay_cloud
from cloud_adapter import CloudBadRequest, CloudChunk, CloudClient, CloudModelNotFound
from router.learning import datasets
from sllm.answers import answers_match, extract_answer
from sllm.chat import ChatMessage
from sllm.settings import CloudSettings

TTFT_MS = 300
MS_PER_TOKEN = 10
FALLBACK = "I cannot say."
UNKNOWN = "What colour is the replay endpoint's favourite teapot on Tuesdays?"


@pytest.fixture(scope="module")
def replay_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("replay") / "replay.log"


@pytest.fixture(scope="module")
def replay_cloud(replay_log: Path) -> Iterator[ReplayCloudProcess]:
    """No latency: answers at once."""
    with replay_log.open("w") as log:
        server = start_replay_cloud(log=log)
        yield server
        server.stop()


@pytest.fixture(scope="module")
def slow_replay_cloud() -> Iterator[ReplayCloudProcess]:
    """A cloud-like latency, and a fallback answer for unknown questions."""
    server = start_replay_cloud(
        "--ttft-ms", str(TTFT_MS), "--ms-per-token", str(MS_PER_TOKEN),
        "--fallback-answer", FALLBACK,
    )  # fmt: skip
    yield server
    server.stop()


def _client(server: ReplayCloudProcess) -> CloudClient:
    # One attempt: a retry would hide what the endpoint answered.
    return CloudClient(CloudSettings(base_url=server.base_url, model="replay", max_attempts=1))


@pytest.fixture
async def client(replay_cloud: ReplayCloudProcess) -> AsyncIterator[CloudClient]:
    client = _client(replay_cloud)
    yield client
    await client.aclose()


@pytest.fixture
async def slow_client(slow_replay_cloud: ReplayCloudProcess) -> AsyncIterator[CloudClient]:
    client = _client(slow_replay_cloud)
    yield client
    await client.aclose()


def _ask(text: str) -> list[ChatMessage]:
    return [ChatMessage("system", "You are a helpful assistant."), ChatMessage("user", text)]


def _deadline() -> float:
    return time.monotonic() + 20


def _question(task: str, index: int = 0) -> datasets.Question:
    return datasets.load(task)[index]


def _gpt4_response(question: str) -> str:
    """GPT-4's recorded response, read straight from RouteLLM's file."""
    path = datasets.default_data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv"
    with path.open(encoding="utf-8", newline="") as rows:
        for row in csv.DictReader(rows):
            if row["prompt"] == question:
                return row["gpt-4-1106-preview_response"]
    raise LookupError(question)


async def test_gsm8k_question_gets_gpt4s_recorded_response(client: CloudClient) -> None:
    question = _question("gsm8k", 7)
    result = await client.complete(_ask(question.prompt), max_tokens=1024, deadline=_deadline())

    assert result.text == _gpt4_response(question.prompt)
    assert result.model == "replay-gpt4"
    assert result.finish_reason == "stop"
    assert not result.usage_estimated
    assert result.completion_tokens == -(-len(result.text) // 4)


@pytest.mark.parametrize("task", ["boolq", "nq_open", "svamp", "aqua", "strategyqa"])
async def test_other_tasks_get_their_gold_answer_flagged_as_gold(
    client: CloudClient, task: str
) -> None:
    question = _question(task, 3)
    result = await client.complete(_ask(question.prompt), max_tokens=64, deadline=_deadline())

    assert result.model == "replay-gold"
    assert answers_match(
        extract_answer(result.text, question.answer_format), question.gold, question.answer_format
    )


@pytest.mark.parametrize("task", ["gsm8k", "boolq", "webquestions"])
async def test_question_inside_instructions_still_matches(client: CloudClient, task: str) -> None:
    question = _question(task, 11)
    bare = await client.complete(_ask(question.prompt), max_tokens=1024, deadline=_deadline())
    wrapped = (
        "Solve the following problem carefully.\n\nQuestion: "
        f"{question.prompt.upper()}\n\nThink step by step, then give 'Answer: <answer>'."
    )
    result = await client.complete(_ask(wrapped), max_tokens=1024, deadline=_deadline())

    assert (result.text, result.model) == (bare.text, bare.model)


async def test_last_user_message_is_the_question(client: CloudClient) -> None:
    first, second = _question("nq_open", 1), _question("nq_open", 2)
    messages = [
        ChatMessage("user", first.prompt),
        ChatMessage("assistant", "Answer: something"),
        ChatMessage("user", second.prompt),
    ]
    result = await client.complete(messages, max_tokens=64, deadline=_deadline())
    assert answers_match(extract_answer(result.text, "FREE_TEXT"), second.gold, "FREE_TEXT")


async def test_unknown_question_is_a_clear_bad_request(
    client: CloudClient, replay_log: Path
) -> None:
    with pytest.raises(CloudBadRequest) as raised:
        await client.complete(_ask(UNKNOWN), max_tokens=64, deadline=_deadline())

    # Not mistaken for a wrong model name: the question is what is unknown.
    assert not isinstance(raised.value, CloudModelNotFound)
    assert "404" in str(raised.value)
    assert "no recorded or gold answer for this question" in str(raised.value)
    assert client.breaker_state == "closed"
    logged = [
        json.loads(line) for line in (await asyncio.to_thread(replay_log.read_text)).splitlines()
    ]
    assert UNKNOWN in [
        e["question_start"] for e in logged if e["event"] == "replay.unknown_question"
    ]


async def test_unknown_question_gets_the_fallback_when_asked(slow_client: CloudClient) -> None:
    result = await slow_client.complete(_ask(UNKNOWN), max_tokens=64, deadline=_deadline())
    assert (result.text, result.model) == (FALLBACK, "replay-fallback")


async def test_request_without_a_user_message_is_a_bad_request(client: CloudClient) -> None:
    with pytest.raises(CloudBadRequest, match="no message with role 'user'"):
        await client.complete(
            [ChatMessage("system", "Be brief.")], max_tokens=8, deadline=_deadline()
        )


async def _streamed(
    client: CloudClient, messages: list[ChatMessage], max_tokens: int
) -> list[CloudChunk]:
    return [c async for c in client.stream(messages, max_tokens=max_tokens, deadline=_deadline())]


async def test_stream_yields_the_unary_text_with_usage(client: CloudClient) -> None:
    messages = _ask(_question("gsm8k", 21).prompt)
    unary = await client.complete(messages, max_tokens=1024, deadline=_deadline())
    chunks = await _streamed(client, messages, 1024)

    deltas, last = chunks[:-1], chunks[-1]
    assert len(deltas) > 10
    assert "".join(c.text for c in deltas) == unary.text
    assert last.result is not None
    assert last.result.text == unary.text
    assert last.result.model == "replay-gpt4"
    assert not last.result.usage_estimated
    assert (last.result.prompt_tokens, last.result.completion_tokens) == (
        unary.prompt_tokens,
        unary.completion_tokens,
    )


async def test_max_tokens_cuts_the_answer_unary_and_streamed(client: CloudClient) -> None:
    messages = _ask(_question("gsm8k", 5).prompt)
    whole = await client.complete(messages, max_tokens=1024, deadline=_deadline())
    cut = await client.complete(messages, max_tokens=5, deadline=_deadline())
    streamed = (await _streamed(client, messages, 5))[-1].result

    assert (cut.text, cut.finish_reason, cut.completion_tokens) == (whole.text[:20], "length", 5)
    assert streamed is not None
    assert (streamed.text, streamed.finish_reason) == (cut.text, "length")


async def test_models_lists_the_replay_models(client: CloudClient) -> None:
    models = await client.list_models(deadline=_deadline())
    assert {"replay", "replay-gpt4", "replay-gold"} <= set(models)


def _post(server: ReplayCloudProcess, text: str) -> tuple[int, dict[str, str]]:
    body = json.dumps({"model": "replay", "messages": [{"role": "user", "content": text}]})
    return _post_body(server, body.encode())


def _post_body(server: ReplayCloudProcess, body: bytes) -> tuple[int, dict[str, str]]:
    """The status, and the headers of an answer or the `error` object of a failure."""
    request = urllib.request.Request(
        f"{server.base_url}/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["error"]


def test_replay_source_header_says_recorded_or_gold(replay_cloud: ReplayCloudProcess) -> None:
    status, headers = _post(replay_cloud, _question("gsm8k", 3).prompt)
    assert (status, headers["x-sllm-replay-source"]) == (200, "recorded")
    assert headers["x-sllm-replay-question"] == "gsm8k/3"

    status, headers = _post(replay_cloud, _question("boolq", 3).prompt)
    assert (status, headers["x-sllm-replay-source"]) == (200, "gold")

    status, error = _post(replay_cloud, UNKNOWN)
    assert (status, error["type"], error["code"]) == (
        404,
        "invalid_request_error",
        "unknown_question",
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\xff not json", "body: Invalid JSON"),
        (b"[]", "body: Input should be an object"),
        (b'{"messages": []}', "messages: List should have at least 1 item"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', "max_tokens"),
    ],
)
def test_malformed_request_is_a_400_that_says_what_is_wrong(
    replay_cloud: ReplayCloudProcess, body: bytes, says: str
) -> None:
    status, error = _post_body(replay_cloud, body)
    assert (status, error["type"]) == (400, "invalid_request_error")
    assert says in error["message"]


def test_jitter_adds_up_to_its_bound_and_a_seed_repeats_it() -> None:
    draws = [Latency(ttft_ms=100, jitter_ms=50, seed=7).first_token_s() for _ in range(2)]
    spread = {Latency(ttft_ms=100, jitter_ms=50).first_token_s() for _ in range(20)}

    assert draws[0] == draws[1]
    assert all(0.1 <= s <= 0.15 for s in spread) and len(spread) > 1


async def test_latency_time_to_first_token_then_per_token(slow_client: CloudClient) -> None:
    messages = _ask(_question("gsm8k", 9).prompt)
    started = time.monotonic()
    chunks = await _streamed(slow_client, messages, 1024)
    elapsed_s = time.monotonic() - started
    result = chunks[-1].result

    assert result is not None and result.ttft_ms is not None
    # Generous margins: at least what was asked; an upper bound only far above it.
    assert TTFT_MS <= result.ttft_ms < TTFT_MS + 3000
    # Every token after the first piece's, at ~4 characters a token.
    generation_s = (len(result.text) - len(chunks[0].text)) / 4 * MS_PER_TOKEN / 1000
    assert TTFT_MS / 1000 + generation_s <= elapsed_s < TTFT_MS / 1000 + generation_s + 5

    started = time.monotonic()
    unary = await slow_client.complete(messages, max_tokens=1024, deadline=_deadline())
    assert TTFT_MS / 1000 + generation_s <= time.monotonic() - started
    assert unary.text == result.text


async def test_concurrent_requests_wait_together(slow_client: CloudClient) -> None:
    """The waits are sleeps on the event loop: eight requests take about as long as one."""
    messages = _ask(_question("svamp", 4).prompt)
    started = time.monotonic()
    results = await asyncio.gather(
        *(slow_client.complete(messages, max_tokens=64, deadline=_deadline()) for _ in range(8))
    )
    elapsed_s = time.monotonic() - started

    assert len({r.text for r in results}) == 1
    # One request takes >= 0.3 s; one after the other, eight would take >= 2.4 s.
    assert elapsed_s < 8 * TTFT_MS / 1000 * 0.75
