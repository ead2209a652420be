"""Sends hostile calls (hostile.py) to running servers and judges every answer
(verdict.py): Hypothesis draws them, so a test that fails is shrunk to a small input."""

from __future__ import annotations

import http.client
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz.hostile import HTTP_CHAT, Call
from bench.fuzz.verdict import grpc_violation, http_violation

# Enough for every answer of a server whose tiers answer at once or are closed.
CALL_TIMEOUT_S = 20.0
_BIG = 64 * 1024 * 1024  # the client sends what the server must refuse


@dataclass(frozen=True)
class Targets:
    router: str | None = None  # host:port
    edge: str | None = None
    http: str | None = None  # base URL


@dataclass
class Tally:
    """Answers by (method, status), the slowest answer, and every rule broken."""

    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    slowest_s: float = 0.0

    @property
    def tried(self) -> int:
        return sum(self.statuses.values())


def _send_grpc(channel: grpc.Channel, call: Call) -> tuple[str, str]:
    try:
        if call.stream:
            for _ in channel.unary_stream(call.method, None, None)(
                call.payload, timeout=CALL_TIMEOUT_S
            ):
                pass
        else:
            channel.unary_unary(call.method, None, None)(call.payload, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as error:
        return error.code().name, error.details() or ""
    return "OK", ""


def _send_http(base_url: str, call: Call) -> tuple[int, bytes]:
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=CALL_TIMEOUT_S)
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=call.payload,
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def fuzz(
    targets: Targets,
    calls: st.SearchStrategy[Call],
    examples: int,
    *,
    stop_at_first: bool,
    derandomize: bool = False,
    tally: Tally | None = None,
) -> Tally:
    """Sends `examples` calls. `stop_at_first`: a broken rule fails at once (Hypothesis then
    shrinks the input); else every one is recorded and the run goes on. `derandomize`: the
    same calls every run (a test's). `tally`: one to add to (a run in parts)."""
    tally = Tally() if tally is None else tally
    options = [("grpc.max_send_message_length", _BIG), ("grpc.max_receive_message_length", _BIG)]
    channels = {
        name: grpc.insecure_channel(target, options=options)
        for name, target in (("router", targets.router), ("edge", targets.edge))
        if target is not None
    }

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(call=calls)
    def send(call: Call) -> None:
        started = time.monotonic()
        if call.method == HTTP_CHAT:
            assert targets.http is not None
            code, body = _send_http(targets.http, call)
            status, violation = str(code), http_violation(code, body)
        else:
            service = "edge" if call.method.startswith("/sllm.v1.EdgeWorker/") else "router"
            status, details = _send_grpc(channels[service], call)
            violation = grpc_violation(status, details)
        tally.slowest_s = max(tally.slowest_s, time.monotonic() - started)
        tally.statuses[call.method.removeprefix("/sllm.v1."), status] += 1
        if violation is not None:
            found = f"{call.method}: {violation} (request: {call.payload[:200]!r})"
            tally.violations.append(found)
            assert not stop_at_first, found

    try:
        send()
    finally:
        for channel in channels.values():
            channel.close()
    return tally
