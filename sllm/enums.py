"""The Router API's enums as plain strings, each defined once with its one mapping to and
from the wire (`Wire`: `sllm.v1` number <-> name). The router decodes requests and encodes
responses with them, the client (sllm/client) the reverse, so neither side can spell a
value differently from the other."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, Literal, TypeVar, get_args

from sllm.chat import Role
from sllm.v1 import common_pb2, router_pb2

RouteHint = Literal["AUTO", "EDGE_ONLY", "CLOUD_ONLY"]
AnswerFormat = Literal["FREE_TEXT", "NUMBER", "CHOICE_LETTER", "YES_NO"]
Route = Literal["EDGE", "CLOUD", "EDGE_THEN_CLOUD", "EDGE_FALLBACK"]
Tier = Literal["EDGE", "CLOUD"]
ReasoningMode = Literal["DIRECT", "STEP_BY_STEP"]
# Why the edge stopped (docs: DESIGN.md, "exit reason").
ExitReason = Literal["SETTLED", "COLLAPSE", "BUDGET", "LENGTH", "STOP"]
# Where the latency budget the router worked with came from (a string on the wire).
BudgetSource = Literal["request", "grpc_deadline", "default"]
BUDGET_SOURCES: tuple[BudgetSource, ...] = get_args(BudgetSource)

Number = TypeVar("Number", bound=int)
Name = TypeVar("Name", bound=str)


class Wire(Generic[Number, Name]):
    """One enum's mapping: `names[number]` as read, `numbers[name]` to send."""

    def __init__(self, names: dict[Number, Name]) -> None:
        self.names = names
        # A name with two numbers (FREE_TEXT) is sent as the last one in `names`.
        self.numbers = {name: number for number, name in names.items()}


def known(names: Iterable[Name], text: object) -> Name | None:
    """`text` as one of `names`, or None when it is none of them."""
    return next((name for name in names if name == text), None)


ROLES: Wire[common_pb2.Role.ValueType, Role] = Wire(
    {
        common_pb2.ROLE_SYSTEM: "system",
        common_pb2.ROLE_USER: "user",
        common_pb2.ROLE_ASSISTANT: "assistant",
    }
)
ROUTE_HINTS: Wire[router_pb2.RouteHint.ValueType, RouteHint] = Wire(
    {
        router_pb2.ROUTE_HINT_AUTO: "AUTO",
        router_pb2.ROUTE_HINT_EDGE_ONLY: "EDGE_ONLY",
        router_pb2.ROUTE_HINT_CLOUD_ONLY: "CLOUD_ONLY",
    }
)
# UNSPECIFIED reads as FREE_TEXT; FREE_TEXT is sent as itself (it comes last).
ANSWER_FORMATS: Wire[common_pb2.AnswerFormat.ValueType, AnswerFormat] = Wire(
    {
        common_pb2.ANSWER_FORMAT_UNSPECIFIED: "FREE_TEXT",
        common_pb2.ANSWER_FORMAT_FREE_TEXT: "FREE_TEXT",
        common_pb2.ANSWER_FORMAT_NUMBER: "NUMBER",
        common_pb2.ANSWER_FORMAT_CHOICE_LETTER: "CHOICE_LETTER",
        common_pb2.ANSWER_FORMAT_YES_NO: "YES_NO",
    }
)
ROUTES: Wire[router_pb2.Route.ValueType, Route] = Wire(
    {
        router_pb2.ROUTE_EDGE: "EDGE",
        router_pb2.ROUTE_CLOUD: "CLOUD",
        router_pb2.ROUTE_EDGE_THEN_CLOUD: "EDGE_THEN_CLOUD",
        router_pb2.ROUTE_EDGE_FALLBACK: "EDGE_FALLBACK",
    }
)
TIERS: Wire[router_pb2.Tier.ValueType, Tier] = Wire(
    {router_pb2.TIER_EDGE: "EDGE", router_pb2.TIER_CLOUD: "CLOUD"}
)
# UNSPECIFIED (not in the table): the cloud's answer, which has no mode.
REASONING_MODES: Wire[common_pb2.ReasoningMode.ValueType, ReasoningMode] = Wire(
    {
        common_pb2.REASONING_MODE_DIRECT: "DIRECT",
        common_pb2.REASONING_MODE_STEP_BY_STEP: "STEP_BY_STEP",
    }
)
# UNSPECIFIED (not in the table): the edge did not answer.
EXIT_REASONS: Wire[common_pb2.ExitReason.ValueType, ExitReason] = Wire(
    {
        common_pb2.EXIT_REASON_SETTLED: "SETTLED",
        common_pb2.EXIT_REASON_COLLAPSE: "COLLAPSE",
        common_pb2.EXIT_REASON_BUDGET: "BUDGET",
        common_pb2.EXIT_REASON_LENGTH: "LENGTH",
        common_pb2.EXIT_REASON_STOP: "STOP",
    }
)
