"""`sllm ask` (one query to a running router, printed with its decision record) and
`sllm router rollback`: the command-line clients of the Router API."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

import grpc

from sllm.v1 import common_pb2, router_pb2, router_pb2_grpc


@dataclass(frozen=True, slots=True)
class AskOptions:
    target: str
    question: str
    budget_ms: int | None
    max_tokens: int | None
    answer_format: str
    route_hint: str
    local_only: bool
    tenant: str
    stream: bool


def request(options: AskOptions) -> router_pb2.RouteRequest:
    message = router_pb2.RouteRequest(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=options.question)],
        route_hint=router_pb2.RouteHint.Value(f"ROUTE_HINT_{options.route_hint}"),
        local_only=options.local_only,
        answer_format=common_pb2.AnswerFormat.Value(f"ANSWER_FORMAT_{options.answer_format}"),
        tenant=options.tenant,
    )
    if options.budget_ms is not None:
        message.latency_budget_ms = options.budget_ms
    if options.max_tokens is not None:
        message.max_tokens = options.max_tokens
    return message


def _name(enum: object, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix)  # type: ignore[attr-defined]


def render(response: router_pb2.RouteResponse) -> str:
    """The decision record as a few readable lines."""
    d = response.decision
    b = d.budget
    route = _name(router_pb2.Route, response.route, "ROUTE_")
    mode = _name(common_pb2.ReasoningMode, response.reasoning_mode, "REASONING_MODE_")
    lines = [
        f"route        {route}{' (degraded)' if response.degraded else ''}"
        + (f", {mode}" if mode != "UNSPECIFIED" else ""),
        f"why          {d.reason}",
        f"p_edge_ok    {d.p_edge_ok:.3f} "
        f"(pre-generation threshold {d.pre_generation_threshold:.3f})"
        + (
            f"; after the edge {d.p_edge_ok_after:.3f} (cascade threshold "
            f"{d.cascade_threshold:.3f})"
            if d.HasField("p_edge_ok_after")
            else ""
        ),
        f"budget       {b.latency_budget_ms:.0f} ms ({b.latency_budget_source}); estimates: "
        f"edge direct {b.est_edge_direct_ms:.0f} ms, step by step "
        f"{b.est_edge_step_by_step_ms:.0f} ms, cloud {b.est_cloud_ms:.0f} ms",
    ]
    if d.edge_exit_reason:
        exit_reason = _name(common_pb2.ExitReason, d.edge_exit_reason, "EXIT_REASON_")
        lines.append(
            f"edge         exit {exit_reason}, confidence {d.edge_confidence.score:.3f}, "
            f"cap {d.edge_max_tokens} tokens"
        )
    for label, error in (("edge error", d.edge_error), ("cloud error", d.cloud_error)):
        if error:
            lines.append(f"{label:<13}{error}")
    t = d.timings
    lines += [
        f"timings      decision {t.decision_ms:.2f} ms, edge {t.edge_ms:.0f} ms, "
        f"cloud {t.cloud_ms:.0f} ms, total {t.total_ms:.0f} ms",
        f"cost         ${d.cost_usd:.6f}; policy {d.policy_version}; request {response.request_id}",
    ]
    if d.low_confidence:
        lines.append("note         low confidence: the cloud could not be used")
    return "\n".join(lines)


async def ask(options: AskOptions, out: TextIO = sys.stdout) -> int:
    async with grpc.aio.insecure_channel(options.target) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        try:
            if not options.stream:
                response = await stub.Generate(request(options))
                out.write(f"{response.text}\n\n")
            else:
                response = await _stream(stub, options, out)
        except grpc.aio.AioRpcError as error:
            sys.stderr.write(f"sllm ask: {error.code().name}: {error.details()}\n")
            return 1
    if response.final_answer:
        out.write(f"answer       {response.final_answer}\n")
    out.write(render(response) + "\n")
    return 0


async def _stream(
    stub: router_pb2_grpc.RouterAsyncStub, options: AskOptions, out: TextIO
) -> router_pb2.RouteResponse:
    async for event in stub.GenerateStream(request(options)):
        kind = event.WhichOneof("event")
        if kind == "delta":
            out.write(event.delta.text)
            out.flush()
        elif kind == "reset":
            out.write(f"\n[reset: {event.reset.reason}]\n")
        elif kind == "final":
            out.write("\n\n")
            return event.final
    raise RuntimeError("the stream ended without its final event")


async def rollback(target: str, out: TextIO = sys.stdout) -> int:
    """`sllm router rollback`: the running router returns to its previous policy."""
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            info = await router_pb2_grpc.RouterStub(channel).RollbackPolicy(
                router_pb2.RollbackPolicyRequest()
            )
        except grpc.aio.AioRpcError as error:
            sys.stderr.write(f"sllm router rollback: {error.code().name}: {error.details()}\n")
            return 1
    out.write(
        f"active policy {info.version} (pre-generation threshold "
        f"{info.pre_generation_threshold:.3f}, cascade threshold {info.cascade_threshold:.3f})\n"
    )
    return 0
