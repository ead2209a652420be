"""Every bad request is INVALID_ARGUMENT with a message that names what to fix, and a
BadRequest detail that names the field (google.rpc's error model)."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sllm.v1 import common_pb2, edge_pb2
from tests.edge.calls import ask, edge_stub, generate
from tests.fixtures.edge import EdgeWorkerProcess


def _user(content: str, role: int = common_pb2.ROLE_USER) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(role=role, content=content)  # type: ignore[arg-type]


# name: (request, what the message mentions, the field its BadRequest names)
BAD_REQUESTS = {
    "no messages": (edge_pb2.EdgeGenerateRequest(), "messages is empty", "messages"),
    "role unset": (
        edge_pb2.EdgeGenerateRequest(messages=[_user("hi", common_pb2.ROLE_UNSPECIFIED)]),
        "messages[0].role",
        "messages[0].role",
    ),
    "unknown role": (
        edge_pb2.EdgeGenerateRequest(messages=[_user("hi", 42)]),
        "messages[0].role",
        "messages[0].role",
    ),
    "blank question": (
        edge_pb2.EdgeGenerateRequest(messages=[_user("   ")]),
        "non-blank",
        "messages",
    ),
    "unknown reasoning mode": (
        ask("hi", reasoning_mode=7),
        "reasoning_mode is 7",
        "reasoning_mode",
    ),
    "unknown answer format": (ask("hi", answer_format=9), "answer_format is 9", "answer_format"),
    "zero max_tokens": (ask("hi", max_tokens=0), "max_tokens is 0", "max_tokens"),
    "negative max_tokens": (ask("hi", max_tokens=-5), "max_tokens is -5", "max_tokens"),
    "prompt longer than the context": (
        ask("hello " * 3000),
        "context holds 2048",
        "messages",
    ),
    "zero collapse window": (
        ask("hi", early_exit=edge_pb2.EarlyExit(collapse_window=0)),
        "collapse_window",
        "early_exit.collapse_window",
    ),
}


def field_violation(error: grpc.RpcError) -> tuple[str, str]:
    """The (field, description) of the status's one field violation."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no details"
    bad = error_details_pb2.BadRequest()
    assert [detail.Unpack(bad) for detail in status.details] == [True]
    [violation] = bad.field_violations
    return violation.field, violation.description


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_is_invalid_argument(edge_server: EdgeWorkerProcess, name: str) -> None:
    request, mentions, field = BAD_REQUESTS[name]
    with edge_stub(edge_server.target) as stub, pytest.raises(grpc.RpcError) as raised:
        generate(stub, request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert mentions in (raised.value.details() or "")
    assert field_violation(raised.value) == (field, raised.value.details())


def test_invalid_utf8_is_invalid_argument_naming_the_field(
    edge_server: EdgeWorkerProcess,
) -> None:
    # A well-behaved client cannot even build this request (protobuf refuses the string),
    # so the bytes go through a raw channel: valid wire format, invalid UTF-8 in a string.
    valid = ask("hello", request_id="r1").SerializeToString()
    invalid = valid.replace(b"hello", b"he\xfflo")  # same length: the framing stays valid
    with grpc.insecure_channel(edge_server.target) as channel:
        raw_generate = channel.unary_stream("/sllm.v1.EdgeWorker/Generate")
        with pytest.raises(grpc.RpcError) as raised:
            list(raw_generate(invalid, timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "messages[0].content is not valid UTF-8" in (raised.value.details() or "")
    assert field_violation(raised.value) == ("messages[0].content", raised.value.details())


def test_malformed_bytes_are_invalid_argument(edge_server: EdgeWorkerProcess) -> None:
    with grpc.insecure_channel(edge_server.target) as channel:
        raw_generate = channel.unary_stream("/sllm.v1.EdgeWorker/Generate")
        with pytest.raises(grpc.RpcError) as raised:
            list(raw_generate(b"\xff\xff\xff", timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid sllm.v1.EdgeGenerateRequest" in (raised.value.details() or "")
    # No one field is at fault.
    assert field_violation(raised.value) == ("", raised.value.details())


def test_malformed_info_bytes_are_invalid_argument(edge_server: EdgeWorkerProcess) -> None:
    # Info takes an empty message, yet its bytes can be corrupt too: not grpc's UNKNOWN.
    with grpc.insecure_channel(edge_server.target) as channel:
        raw_info = channel.unary_unary("/sllm.v1.EdgeWorker/Info")
        with pytest.raises(grpc.RpcError) as raised:
            raw_info(b"\x00", timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid sllm.v1.EdgeInfoRequest" in (raised.value.details() or "")


def test_worker_still_serves_after_bad_requests(edge_server: EdgeWorkerProcess) -> None:
    with edge_stub(edge_server.target) as stub:
        for request, _, _ in BAD_REQUESTS.values():
            with pytest.raises(grpc.RpcError):
                generate(stub, request)
        result = generate(stub, ask("What is 2 + 3?", max_tokens=8))
    assert result.summary.completion_tokens > 0
