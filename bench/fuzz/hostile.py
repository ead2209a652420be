"""Hypothesis strategies for hostile requests, as the bytes a client sends: random unicode,
huge and empty strings, control characters, NaN, negative and huge numbers, unknown enum
values, no message or thousands of them, messages over gRPC's size limit, invalid UTF-8
and bytes that are no message at all."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message
from hypothesis import strategies as st

from sllm.v1 import common_pb2, edge_pb2, router_pb2

INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Call:
    """One request: a gRPC method's path (or "POST /v1/chat/completions") and its bytes."""

    method: str
    payload: bytes
    stream: bool = False


def _huge() -> st.SearchStrategy[str]:
    """Past the prompt limit (32,000 characters) and the HTTP body limit (1 MB), any
    character repeated; and past gRPC's message limit (4 MB), plain: a string of the same
    length in 4-byte characters would cost the client 100 MB of JSON for nothing more."""
    # codec: a lone surrogate is no string a client can send (protobuf refuses it).
    repeated = st.builds(
        lambda piece, n: piece * n,
        st.characters(codec="utf-8"),
        st.sampled_from([5_000, 40_000, 300_000]),
    )
    # Built when drawn: a constant would be printed whole in Hypothesis's reports.
    return repeated | st.just(4_200_000).map(lambda n: "x" * n)


TEXT = st.one_of(
    st.text(),
    st.just(""),
    st.text(st.sampled_from(" \t\n\r\x0b\x0c\u00a0\u2028\u3000")),
    st.text(
        st.characters(max_codepoint=0x1F) | st.characters(min_codepoint=0x7F, max_codepoint=0x9F)
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8).map(
        lambda s: s + "\u200b\u202e\ufeff"
    ),
    _huge(),
)
INTS = st.one_of(st.integers(*INT32), st.sampled_from([0, -1, 1, 2, INT32[0], INT32[1]]))
UINTS = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2**32 - 1]))
DOUBLES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, -1.0, 1e308, 5e-324, 0.5]),
)
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)
ENUMS = st.one_of(st.integers(0, 8), st.integers(*INT32))


def _chat_message(content: st.SearchStrategy[str]) -> st.SearchStrategy[common_pb2.ChatMessage]:
    return st.builds(common_pb2.ChatMessage, role=ENUMS, content=content)


# Thousands of messages are short ones: thousands of huge ones would be gigabytes.
MESSAGES = st.one_of(
    st.lists(_chat_message(TEXT), max_size=4),
    st.builds(lambda m, n: [m] * n, _chat_message(st.text(max_size=16)), st.integers(1_000, 5_000)),
)


def _optional(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {name: v}))


def _fields(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Each field absent or drawn, so requests that pass some checks reach later ones."""
    parts = [_optional(name, values) for name, values in strategies.items()]
    return st.tuples(*parts).map(lambda dicts: {k: v for d in dicts for k, v in d.items()})


M = TypeVar("M", router_pb2.RouteRequest, edge_pb2.EdgeGenerateRequest)


def _asking(requests: st.SearchStrategy[M]) -> st.SearchStrategy[M]:
    """The requests drawn, and the same with a user's question last: few requests drawn
    blindly get past the messages' checks to the rest."""

    def ask(request: M, question: str) -> M:
        asked = type(request)()
        asked.CopyFrom(request)
        del asked.messages[4:]
        asked.messages.add(role=common_pb2.ROLE_USER, content=question)
        return asked

    return requests | st.builds(ask, requests, TEXT)


ROUTE_REQUESTS = _asking(
    _fields(
        messages=MESSAGES,
        max_tokens=INTS,
        latency_budget_ms=INTS,
        cost_ceiling_usd=DOUBLES,
        route_hint=ENUMS,
        local_only=st.booleans(),
        answer_format=ENUMS,
        tenant=TEXT,
        client_request_id=TEXT,
    ).map(lambda fields: router_pb2.RouteRequest(**fields))
)
FEEDBACK_REQUESTS = _fields(request_id=TEXT, score=DOUBLES, source=TEXT).map(
    lambda fields: router_pb2.FeedbackRequest(**fields)
)
EARLY_EXITS = _fields(
    disabled=st.booleans(),
    settle_min_logprob=FLOATS,
    collapse_max_logprob=FLOATS,
    collapse_window=UINTS,
    collapse_min_tokens=UINTS,
    collapse_repeat_tokens=UINTS,
).map(lambda fields: edge_pb2.EarlyExit(**fields))
EDGE_REQUESTS = _asking(
    st.tuples(
        _fields(
            messages=MESSAGES,
            reasoning_mode=ENUMS,
            max_tokens=INTS,
            time_budget_ms=UINTS,
            answer_format=ENUMS,
            request_id=TEXT,
        ),
        _optional("early_exit", EARLY_EXITS),
    ).map(lambda parts: edge_pb2.EdgeGenerateRequest(**parts[0], **parts[1]))
)

# Not UTF-8: a lone continuation byte, an overlong form, a surrogate, a truncated sequence.
INVALID_UTF8 = st.lists(
    st.sampled_from([b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xff", b"\xf8\x88"]),
    min_size=1,
    max_size=4,
).map(b"".join)
_MARK = "\u2603SLLMFUZZ"


def _with_invalid_utf8(message: Message, string_field: str) -> st.SearchStrategy[bytes]:
    """The message with one string field's bytes replaced by invalid UTF-8: a client
    library refuses to build it, so it is spliced into the serialized bytes."""

    def splice(bad: bytes) -> bytes:
        copy = type(message)()
        copy.CopyFrom(message)
        if string_field == "content":
            copy.messages.add(role=common_pb2.ROLE_USER, content=_MARK)  # type: ignore[attr-defined]
        else:
            setattr(copy, string_field, _MARK)
        data = copy.SerializeToString()
        mark = _MARK.encode()
        # Same length, so the field's length prefix stays right.
        return data.replace(mark, (bad * len(mark))[: len(mark)])

    return INVALID_UTF8.map(splice)


def _grpc(
    method: str, messages: st.SearchStrategy[Any], strings: tuple[str, ...], stream: bool = False
) -> st.SearchStrategy[Call]:
    serialized = messages.map(lambda m: m.SerializeToString())
    spliced = (
        st.tuples(messages, st.sampled_from(strings)).flatmap(
            lambda pair: _with_invalid_utf8(*pair)
        )
        if strings
        else st.nothing()
    )
    garbage = st.binary(max_size=256)
    return st.one_of(serialized, spliced, garbage).map(lambda data: Call(method, data, stream))


def router_calls() -> st.SearchStrategy[Call]:
    """Every RPC of sllm.v1.Router."""
    return st.one_of(
        _grpc(
            "/sllm.v1.Router/Generate", ROUTE_REQUESTS, ("content", "tenant", "client_request_id")
        ),
        _grpc("/sllm.v1.Router/GenerateStream", ROUTE_REQUESTS, ("content", "tenant"), stream=True),
        _grpc("/sllm.v1.Router/Feedback", FEEDBACK_REQUESTS, ("request_id", "source")),
        _grpc("/sllm.v1.Router/GetPolicy", st.just(router_pb2.GetPolicyRequest()), ()),
        _grpc("/sllm.v1.Router/RollbackPolicy", st.just(router_pb2.RollbackPolicyRequest()), ()),
    )


def edge_calls() -> st.SearchStrategy[Call]:
    """Every RPC of sllm.v1.EdgeWorker."""
    return st.one_of(
        _grpc("/sllm.v1.EdgeWorker/Generate", EDGE_REQUESTS, ("content", "request_id"), True),
        _grpc("/sllm.v1.EdgeWorker/Info", st.just(edge_pb2.EdgeInfoRequest()), ()),
    )


HTTP_CHAT = "POST /v1/chat/completions"
_JSON = st.recursive(
    st.none() | st.booleans() | INTS | DOUBLES | TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
_HTTP_MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "system", "assistant", "developer", "tool"])
        | TEXT
        | _JSON,
        "content": TEXT | _JSON,
        "name": TEXT,
    },
)
_HTTP_BODY = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["sllm-auto", "sllm-edge", "sllm-cloud"]) | TEXT | _JSON,
        "messages": st.lists(_HTTP_MESSAGE, max_size=4)
        | st.builds(
            lambda m, n: [m] * n,
            st.fixed_dictionaries({"role": st.just("user"), "content": st.text(max_size=16)}),
            st.integers(1_000, 5_000),
        )
        | _JSON,
        "max_tokens": INTS | DOUBLES | _JSON,
        "max_completion_tokens": INTS | _JSON,
        "stream": st.booleans() | _JSON,
        "temperature": DOUBLES | _JSON,
        "user": TEXT | _JSON,
        "response_format": _JSON,
        "sllm": st.fixed_dictionaries(
            {},
            optional={
                "latency_budget_ms": INTS | DOUBLES | _JSON,
                "cost_ceiling_usd": DOUBLES | _JSON,
                "local_only": st.booleans() | _JSON,
                "answer_format": TEXT | _JSON,
                "route": TEXT | _JSON,
            },
        )
        | _JSON,
    },
)


# Hostile questions, and plain ones that some bodies need to be answered at all.
_QUESTIONS = TEXT | st.sampled_from(["Is it?", "What is 2 + 2?"])


def _routable(body: dict[str, Any], question: str) -> dict[str, Any]:
    """A known model and a user's question last, the rest as drawn: few bodies drawn
    blindly would reach the router."""
    messages = body.get("messages")
    earlier = messages[:4] if isinstance(messages, list) else []
    return {
        **body,
        "model": "sllm-auto",
        "messages": [*earlier, {"role": "user", "content": question}],
    }


def http_calls() -> st.SearchStrategy[Call]:
    """Bodies for the HTTP door: hostile JSON (NaN too, which strict JSON has not), some
    steered to reach the router, plain questions alone, hostile JSON with invalid UTF-8
    spliced into a string, and bytes that are no JSON."""
    drawn = _HTTP_BODY | st.builds(_routable, _HTTP_BODY, _QUESTIONS)
    bodies = drawn.map(lambda body: json.dumps(body).encode())
    plain = st.builds(_routable, st.just({}), _QUESTIONS).map(
        lambda body: json.dumps(body).encode()
    )
    spliced = st.tuples(_HTTP_BODY, INVALID_UTF8).map(
        lambda pair: (
            json.dumps({**pair[0], "user": _MARK}, ensure_ascii=False)
            .encode()
            .replace(_MARK.encode(), pair[1])
        )
    )
    return st.one_of(bodies, plain, spliced, st.binary(max_size=256)).map(
        lambda data: Call(HTTP_CHAT, data)
    )
