"""`sllm ask` (one query to a running router, printed with its decision record) and
`sllm router rollback`: the command-line clients of the Router API, on sllm/client."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TextIO

from sllm.client import Event, Options, Reset, Result, RouterClient, RouterError


def render(result: Result) -> str:
    """The decision record as a few readable lines."""
    d = result.decision
    b = d.budget
    lines = [
        f"route        {result.route}{' (degraded)' if result.degraded else ''}"
        + (f", {result.reasoning_mode}" if result.reasoning_mode else ""),
        f"why          {d.reason}",
        f"p_edge_ok    {d.p_edge_ok:.3f} "
        f"(pre-generation threshold {d.pre_generation_threshold:.3f})"
        + (
            f"; after the edge {d.p_edge_ok_after:.3f} (cascade threshold "
            f"{d.cascade_threshold:.3f})"
            if d.p_edge_ok_after is not None
            else ""
        ),
        f"budget       {b.latency_budget_ms:.0f} ms ({b.latency_budget_source}); estimates: "
        f"edge direct {b.est_edge_direct_ms:.0f} ms, step by step "
        f"{b.est_edge_step_by_step_ms:.0f} ms, cloud {b.est_cloud_ms:.0f} ms",
    ]
    if d.edge_exit_reason is not None and d.edge_confidence is not None:
        lines.append(
            f"edge         exit {d.edge_exit_reason}, confidence {d.edge_confidence:.3f}, "
            f"cap {d.edge_max_tokens} tokens"
        )
    for label, error in (("edge error", d.edge_error), ("cloud error", d.cloud_error)):
        if error:
            lines.append(f"{label:<13}{error}")
    t = d.timings
    lines += [
        f"timings      decision {t.decision_ms:.2f} ms, edge {t.edge_ms:.0f} ms, "
        f"cloud {t.cloud_ms:.0f} ms, total {t.total_ms:.0f} ms",
        f"cost         ${d.cost_usd:.6f}; policy {d.policy_version}; request {result.request_id}",
    ]
    if d.low_confidence:
        lines.append("note         low confidence: the cloud could not be used")
    return "\n".join(lines)


def ask(
    client: RouterClient, question: str, options: Options, *, stream: bool, out: TextIO = sys.stdout
) -> int:
    try:
        if stream:
            result = _stream(client.stream(question, **options), out)
        else:
            result = client.generate(question, **options)
            out.write(f"{result.text}\n\n")
    except RouterError as error:
        sys.stderr.write(f"sllm ask: {error}\n")
        return 1
    if result.final_answer:
        out.write(f"answer       {result.final_answer}\n")
    out.write(render(result) + "\n")
    return 0


def _stream(events: Iterator[Event], out: TextIO) -> Result:
    for event in events:
        if isinstance(event, Result):
            out.write("\n\n")
            return event
        if isinstance(event, Reset):
            out.write(f"\n[reset: {event.reason}]\n")
        else:
            out.write(event.text)
            out.flush()
    raise RuntimeError("the stream ended without its final event")


def rollback(client: RouterClient, out: TextIO = sys.stdout) -> int:
    """`sllm router rollback`: the running router returns to its previous policy."""
    try:
        info = client.rollback()
    except RouterError as error:
        sys.stderr.write(f"sllm router rollback: {error}\n")
        return 1
    out.write(
        f"active policy {info.version} (pre-generation threshold "
        f"{info.pre_generation_threshold:.3f}, cascade threshold {info.cascade_threshold:.3f})\n"
    )
    return 0
