"""Transient faults, deadlines and the breaker, with the fault proxy in front of the real
stand-in server (see fault_proxy.py)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from cloud_adapter import (
    CloudAuthError,
    CloudBadRequest,
    CloudChunk,
    CloudClient,
    CloudDeadlineExceeded,
    CloudRateLimited,
    CloudStreamBroken,
    CloudUnavailable,
)
from cloud_adapter.causes import causes
from sllm.chat import ChatMessage
from tests.cloud.conftest import MakeClient
from tests.cloud.fault_proxy import (
    CutAfterEvents,
    Delay,
    FaultProxy,
    Reset,
    StallAfterEvents,
    Status,
)
from tests.fakes.clock import FakeClock
from tests.fixtures.cloud import StandInServer

QUESTION = [ChatMessage("user", "Name three colours.")]
# Slack for the event loop between the deadline firing and the error reaching the caller.
DEADLINE_SLACK_S = 0.1


async def test_retries_succeed_after_transient_faults(
    make_client: MakeClient, proxy: FaultProxy, standin_server: StandInServer
) -> None:
    client = make_client(max_attempts=4)
    proxy.inject(Status(503), Reset(), Status(500))
    before = standin_server.access_log.mark()

    result = await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)

    assert result.text
    assert result.attempts == 4
    assert proxy.requests == 4
    assert len(standin_server.access_log.completions(since=before)) == 1
    assert _state(client) == "closed"


async def test_gives_up_after_max_attempts(make_client: MakeClient, proxy: FaultProxy) -> None:
    client = make_client(max_attempts=3)
    proxy.inject(*[Status(503)] * 5)

    with pytest.raises(CloudUnavailable, match="HTTP 503 after 3 attempts") as caught:
        await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)

    assert proxy.requests == 3
    assert caught.value.endpoint == proxy.base_url
    assert not caught.value.breaker_open


async def test_retry_after_is_honoured_when_it_fits(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    client = make_client()
    proxy.inject(Status(429, retry_after="0.4"))
    started = time.monotonic()

    result = await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)

    assert result.attempts == 2
    # The random backoff would have been at most 0.2 s: the wait is the server's.
    assert time.monotonic() - started >= 0.4


async def test_retry_after_beyond_the_deadline_fails_at_once(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    client = make_client()
    proxy.inject(Status(429, retry_after="30"))
    deadline = time.monotonic() + 5

    with pytest.raises(CloudRateLimited) as caught:
        await client.complete(QUESTION, max_tokens=4, deadline=deadline)

    assert caught.value.retry_after_s == 30
    assert proxy.requests == 1
    # It did not sit out the deadline waiting for a retry that could not happen.
    assert time.monotonic() < deadline - 3


async def test_no_retry_on_400(standin_server: StandInServer) -> None:
    client = CloudClient(standin_server.settings(max_attempts=5))
    before = standin_server.access_log.mark()
    # Longer than the stand-in's 2048-token context: the real server answers 400.
    too_long = [ChatMessage("user", "hello " * 3000)]

    with pytest.raises(CloudBadRequest, match=r"HTTP 400.*context length"):
        await client.complete(too_long, max_tokens=4, deadline=time.monotonic() + 30)

    assert [r.status for r in standin_server.access_log.completions(since=before)] == [400]
    # The endpoint answered: a bad request does not count against it.
    assert _state(client) == "closed"
    await client.aclose()


async def test_no_retry_on_401_and_the_right_key_works(keyed_standin: StandInServer) -> None:
    before = keyed_standin.access_log.mark()
    wrong = CloudClient(keyed_standin.settings(api_key="wrong-key", max_attempts=5))
    with pytest.raises(CloudAuthError, match="HTTP 401"):
        await wrong.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    assert [r.status for r in keyed_standin.access_log.completions(since=before)] == [401]

    right = CloudClient(keyed_standin.settings())
    result = await right.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    assert result.text
    await wrong.aclose()
    await right.aclose()


async def _collect(client: CloudClient, deadline: float) -> list[CloudChunk]:
    return [c async for c in client.stream(QUESTION, max_tokens=32, deadline=deadline)]


@pytest.mark.parametrize(
    ("scenario", "faults", "settings", "expected"),
    [
        ("server slower than the deadline", [Delay(10)], {}, CloudDeadlineExceeded),
        (
            "request timeout shorter than the deadline, then retries",
            [Delay(10)] * 5,
            {"request_timeout_s": 0.4, "max_attempts": 5},
            # Depending on the random backoffs, the last attempt is cut by the deadline or
            # by its own timeout (with no time left to try again).
            (CloudDeadlineExceeded, CloudUnavailable),
        ),
        (
            "5xx with long backoffs",
            [Status(503)] * 20,
            {"max_attempts": 20, "backoff_initial_s": 0.3, "backoff_max_s": 0.6},
            CloudUnavailable,
        ),
        (
            "Retry-After that fits once, not twice",
            [Status(429, retry_after="0.7")] * 3,
            {"max_attempts": 5},
            CloudRateLimited,
        ),
    ],
)
async def test_a_call_never_outlives_its_deadline(
    make_client: MakeClient,
    proxy: FaultProxy,
    scenario: str,
    faults: list[Status | Delay],
    settings: dict[str, object],
    expected: type[Exception] | tuple[type[Exception], ...],
) -> None:
    client = make_client(breaker_failure_threshold=100, **settings)
    proxy.inject(*faults)
    started = time.monotonic()
    deadline = started + 1.5

    with pytest.raises(expected):
        await client.complete(QUESTION, max_tokens=4, deadline=deadline)

    ended = time.monotonic()
    assert ended <= deadline + DEADLINE_SLACK_S, f"{scenario}: {ended - deadline:.3f} s late"


async def test_a_stream_never_outlives_its_deadline(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    client = make_client()
    proxy.inject(StallAfterEvents(3))
    # Room for the first tokens on a busy machine; the stall then outlasts it.
    deadline = time.monotonic() + 3
    received: list[str] = []

    with pytest.raises(CloudStreamBroken, match="deadline") as caught:
        async for chunk in client.stream(QUESTION, max_tokens=32, deadline=deadline):
            received.append(chunk.text)

    assert time.monotonic() <= deadline + DEADLINE_SLACK_S
    assert received and caught.value.partial_text == "".join(received)
    # Our deadline cut it; the endpoint was answering: no mark against it.
    assert _state(client) == "closed"


async def test_a_broken_stream_reports_its_partial_output(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    client = make_client(max_attempts=3)
    full = await _collect(client, time.monotonic() + 30)
    full_text = full[-1].result.text if full[-1].result else ""
    proxy.inject(CutAfterEvents(4))
    requests_before = proxy.requests
    received: list[str] = []

    with pytest.raises(CloudStreamBroken) as caught:
        async for chunk in client.stream(QUESTION, max_tokens=32, deadline=time.monotonic() + 30):
            received.append(chunk.text)

    partial = caught.value.partial_text
    assert partial and partial == "".join(received)
    # Temperature 0: the broken stream is the start of the whole answer.
    assert full_text.startswith(partial) and len(partial) < len(full_text)
    assert caught.value.cause is not None
    # Not silently retried from scratch.
    assert proxy.requests == requests_before + 1


async def test_a_stream_that_fails_before_its_first_token_is_retried(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    client = make_client(max_attempts=3)
    # The first event carries only the role: the cut comes before any text.
    proxy.inject(CutAfterEvents(1), Status(502))

    chunks = await _collect(client, time.monotonic() + 30)

    result = chunks[-1].result
    assert result is not None and result.text
    assert result.attempts == 3
    assert proxy.requests == 3


def _state(client: CloudClient) -> str:
    # A function call, so that mypy does not narrow the state across awaits.
    return client.breaker_state


def _breaker_gauge(client: CloudClient) -> float | None:
    return REGISTRY.get_sample_value("sllm_cloud_breaker_state", {"endpoint": client.endpoint})


# The breaker's cool-down runs on a FakeClock (tests/fakes/clock.py): these tests move it
# past the cool-down instead of sleeping through it.
COOLDOWN_S = 30.0


async def _until_requests(proxy: FaultProxy, count: int) -> None:
    """Waits (on the event loop, at most 5 s) until the proxy has received `count`."""
    for _ in range(500):
        if proxy.requests >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the proxy received {proxy.requests} requests, not {count}")


async def test_the_breaker_opens_fails_fast_and_closes_after_a_good_probe(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    clock = FakeClock()
    client = make_client(
        clock, max_attempts=1, breaker_failure_threshold=3, breaker_cooldown_s=COOLDOWN_S
    )
    proxy.inject(Status(503), Reset(), Status(500))
    for _ in range(3):
        assert _state(client) == "closed"
        with pytest.raises(CloudUnavailable) as caught:
            await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
        assert not caught.value.breaker_open
    assert _state(client) == "open"
    assert _breaker_gauge(client) == 2

    # While open: no I/O, and an answer at once.
    durations = []
    for _ in range(20):
        started = time.perf_counter()
        with pytest.raises(CloudUnavailable) as caught:
            await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
        durations.append(time.perf_counter() - started)
        assert caught.value.breaker_open
    assert proxy.requests == 3
    assert statistics.median(durations) < 0.005, f"median {statistics.median(durations):.4f} s"

    clock.advance(COOLDOWN_S - 0.001)
    assert _state(client) == "open"
    clock.advance(0.001)  # the cool-down is over
    assert _state(client) == "half_open"
    result = await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    assert result.text
    assert _state(client) == "closed"
    assert _breaker_gauge(client) == 0


async def test_a_failed_probe_opens_the_breaker_again(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    clock = FakeClock()
    client = make_client(
        clock, max_attempts=1, breaker_failure_threshold=2, breaker_cooldown_s=COOLDOWN_S
    )
    proxy.inject(Status(503), Status(503), Status(503))
    for _ in range(2):
        with pytest.raises(CloudUnavailable):
            await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    clock.advance(COOLDOWN_S)

    with pytest.raises(CloudUnavailable) as caught:
        await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)

    assert not caught.value.breaker_open  # the probe went out, and failed
    assert _state(client) == "open"
    with pytest.raises(CloudUnavailable) as caught:
        await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    assert caught.value.breaker_open
    assert proxy.requests == 3
    # Opened again for a whole new cool-down, counted from the failed probe.
    clock.advance(COOLDOWN_S - 0.001)
    assert _state(client) == "open"
    clock.advance(0.001)
    assert _state(client) == "half_open"


async def test_the_breaker_stops_retries_once_open(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    client = make_client(max_attempts=10, breaker_failure_threshold=2, breaker_cooldown_s=30)
    proxy.inject(*[Status(503)] * 10)

    with pytest.raises(CloudUnavailable) as caught:
        await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)

    assert caught.value.breaker_open
    assert proxy.requests == 2


async def test_while_the_probe_is_out_other_calls_fail_at_once(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    clock = FakeClock()
    client = make_client(
        clock, max_attempts=1, breaker_failure_threshold=1, breaker_cooldown_s=COOLDOWN_S
    )
    proxy.inject(Status(503), Delay(0.5))
    with pytest.raises(CloudUnavailable):
        await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    clock.advance(COOLDOWN_S)

    probe = asyncio.create_task(
        client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    )
    await _until_requests(proxy, 2)  # the probe is now held by the proxy
    with pytest.raises(CloudUnavailable) as caught:
        await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    assert caught.value.breaker_open

    assert (await probe).text
    assert _state(client) == "closed"
    assert proxy.requests == 2


async def test_a_cancelled_probe_frees_the_way_for_the_next(
    make_client: MakeClient, proxy: FaultProxy
) -> None:
    clock = FakeClock()
    client = make_client(
        clock, max_attempts=1, breaker_failure_threshold=1, breaker_cooldown_s=COOLDOWN_S
    )
    proxy.inject(Status(503), Delay(30))
    with pytest.raises(CloudUnavailable):
        await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    clock.advance(COOLDOWN_S)

    probe = asyncio.create_task(
        client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    )
    await _until_requests(proxy, 2)  # the probe is now held by the proxy
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    # The cancelled probe said nothing about the endpoint: the next call probes instead.
    result = await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    assert result.text
    assert _state(client) == "closed"


@pytest.mark.parametrize(
    "body", ["<html>a login page</html>", '{"object": "list"}', '{"choices": "none"}', ""]
)
async def test_an_answer_that_is_not_a_chat_completion_is_an_error(
    make_client: MakeClient, proxy: FaultProxy, body: str
) -> None:
    client = make_client(max_attempts=1)
    proxy.inject(Status(200, body=body), Status(200, body=body))

    with pytest.raises(CloudUnavailable, match="unexpected answer"):
        await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
    with pytest.raises(CloudUnavailable, match="ended before any text"):
        await _collect(client, time.monotonic() + 30)


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_refused_connection_is_a_connection_failure_not_a_timeout(
    make_client: MakeClient, streamed: bool
) -> None:
    """The openai client's aiohttp transport reports a refused connection as a connect
    timeout; the adapter reads the cause: unavailable (retried, the breaker counts it),
    never "deadline reached", even on the last attempt before the deadline."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(base_url=f"http://127.0.0.1:{port}/v1", max_attempts=2)
    deadline = time.monotonic() + 30
    with capture_logs() as logged, pytest.raises(CloudUnavailable) as failed:
        if streamed:
            async for _ in client.stream(QUESTION, max_tokens=4, deadline=deadline):
                pass
        else:
            await client.complete(QUESTION, max_tokens=4, deadline=deadline)
    assert not isinstance(failed.value, CloudDeadlineExceeded)
    [retry] = [line for line in logged if line["event"] == "cloud.retry"]
    assert "Timeout" not in retry["cause"]
    assert "connection failed after 2 attempts" in str(failed.value)
    assert any(isinstance(cause, ConnectionRefusedError) for cause in causes(failed.value))
