"""What tracing costs a request, for `sllm bench router`, measured with instant tiers.

Through a model, two identically set routers differ by more than tracing costs (the model's
noise, and where each process happens to run), so the cost is measured where the router is
all there is: router processes with the instant edge in their process
(bench/instant_edge.py, the capacity benchmark's router), one 1-word request at a time over
gRPC, every router once a round in a new order each round:

- two untraced routers, two with every request traced, one with one in ten traced, spans
  exported over OTLP/HTTP to a receiver in this process;
- a request's cost is the paired median, over the rounds, of (traced - untraced), each
  traced router paired with its own untraced one; the two untraced routers' own paired
  difference is the noise that comparison carries (the control);
- the CPU each router process spent per request (from /proc, once its spans have gone
  out): what tracing costs the machine, in the request or after its answer.

`measure_span_cpu` takes the part of that CPU that is tracing's own apart, in this process:
a request's spans as the router records them, the same spans through the SDK's tracer (the
baseline: how the router made them before), and their OTLP encoding on the exporter's
thread.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from bench.capacity.suite import cpu_s, router_env, server_process
from bench.otlp_receiver import Receiver
from router.spans import EDGE, ROUTE, RequestTrace, Step
from sllm.tracing import Tracing
from sllm.v1 import common_pb2, router_pb2, router_pb2_grpc

# No cloud is called (local_only): an address nothing listens on.
_NO_CLOUD = "http://127.0.0.1:9/v1"
_SAMPLE_ALL = {"SLLM_OBSERVABILITY__SAMPLING_RATIO": "1"}
_SAMPLE_TENTH = {"SLLM_OBSERVABILITY__SAMPLING_RATIO": "0.1"}
# name -> tracing settings; None: untraced.
ROUTERS: dict[str, dict[str, str] | None] = {
    "untraced": None,
    "untraced_2": None,
    "traced": _SAMPLE_ALL,
    "traced_2": _SAMPLE_ALL,
    "traced_10pct": _SAMPLE_TENTH,
}
_WARM_UP_ROUNDS = 50
# The batch exporter sends within 5 s (the SDK's default delay): wait for it before the
# CPU is read, so that it counts.
_EXPORT_WAIT_S = 6.0


@dataclass(frozen=True)
class TracingCost:
    cost_paired_p50_ms: float  # every request traced, mean of the two pairs
    cost_10pct_paired_p50_ms: float  # one in ten
    control_paired_p50_ms: float  # untraced_2 - untraced: what the comparison's noise is
    cpu_ms: dict[str, float]  # per request, by router
    rounds: int
    spans_exported: int

    def figures(self) -> dict[str, float]:
        untraced_cpu = statistics.fmean((self.cpu_ms["untraced"], self.cpu_ms["untraced_2"]))
        traced_cpu = statistics.fmean((self.cpu_ms["traced"], self.cpu_ms["traced_2"]))
        return {
            "tracing_cost_paired_p50_ms": self.cost_paired_p50_ms,
            "tracing_10pct_cost_paired_p50_ms": self.cost_10pct_paired_p50_ms,
            "tracing_control_paired_p50_ms": self.control_paired_p50_ms,
            "tracing_cpu_ms": traced_cpu - untraced_cpu,
            "tracing_10pct_cpu_ms": self.cpu_ms["traced_10pct"] - untraced_cpu,
            "spans_exported": float(self.spans_exported),
        }

    def summary(self) -> str:
        figures = self.figures()
        return (
            f"tracing, instant tiers ({self.rounds} rounds; OTLP/HTTP to a receiver here): "
            f"every request traced {figures['tracing_cost_paired_p50_ms']:+.3f} ms a request "
            f"(paired p50), one in ten {figures['tracing_10pct_cost_paired_p50_ms']:+.3f} ms; "
            f"two untraced routers differ by {figures['tracing_control_paired_p50_ms']:+.3f} "
            f"ms; CPU a request {figures['tracing_cpu_ms']:+.3f} ms (one in ten "
            f"{figures['tracing_10pct_cpu_ms']:+.3f}); {self.spans_exported} spans received"
        )


def _paired_p50(traced: list[float], untraced: list[float]) -> float:
    return statistics.median(t - u for t, u in zip(traced, untraced, strict=True))


async def _call_in_rounds(targets: dict[str, str], rounds: int) -> dict[str, list[float]]:
    request = router_pb2.RouteRequest(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content="Hi?")],
        max_tokens=1,
        local_only=True,
    )
    channels = {name: grpc.aio.insecure_channel(target) for name, target in targets.items()}
    stubs = {name: router_pb2_grpc.RouterStub(channel) for name, channel in channels.items()}
    calls: dict[str, list[float]] = {name: [] for name in targets}
    order = random.Random(0)
    try:
        for i in range(_WARM_UP_ROUNDS + rounds):
            names = list(stubs)
            order.shuffle(names)
            for name in names:
                started = time.perf_counter()
                response = await stubs[name].Generate(request)
                elapsed_ms = (time.perf_counter() - started) * 1000.0
                assert response.route == router_pb2.ROUTE_EDGE, response.decision.reason
                if i >= _WARM_UP_ROUNDS:
                    calls[name].append(elapsed_ms)
    finally:
        for channel in channels.values():
            await channel.close(grace=None)
    return calls


async def measure_tracing_cost(rounds: int, scratch: Path) -> TracingCost:
    receiver = Receiver()
    try:
        with ExitStack() as stack:
            processes = {}
            for name, tracing in ROUTERS.items():
                (scratch / name).mkdir()
                env = router_env(_NO_CLOUD, scratch / name)
                if tracing is not None:
                    env |= {"SLLM_OBSERVABILITY__OTLP_ENDPOINT": receiver.url, **tracing}
                processes[name] = stack.enter_context(
                    server_process("bench.capacity.serve", scratch / f"{name}.log", env)
                )
            cpu_before = {name: cpu_s(process.pid) for name, (process, _) in processes.items()}
            targets = {name: addresses["grpc"] for name, (_, addresses) in processes.items()}
            calls = await _call_in_rounds(targets, rounds)
            await asyncio.sleep(_EXPORT_WAIT_S)
            served = _WARM_UP_ROUNDS + rounds
            cpu_ms = {
                name: (cpu_s(process.pid) - cpu_before[name]) * 1000.0 / served
                for name, (process, _) in processes.items()
            }
        return TracingCost(
            cost_paired_p50_ms=statistics.fmean(
                (
                    _paired_p50(calls["traced"], calls["untraced"]),
                    _paired_p50(calls["traced_2"], calls["untraced_2"]),
                )
            ),
            cost_10pct_paired_p50_ms=_paired_p50(calls["traced_10pct"], calls["untraced"]),
            control_paired_p50_ms=_paired_p50(calls["untraced_2"], calls["untraced"]),
            cpu_ms=cpu_ms,
            rounds=rounds,
            spans_exported=receiver.span_count(),
        )
    finally:
        receiver.close()


# A request's spans as the router makes them for an edge answer (router/spans.py): the
# route's 7 attributes, decide's 8, the edge call's 9 with its two phases inside it.
_ROUTE_ATTRIBUTES = 7
_STEPS = (("sllm.decide", 8), ("sllm.edge", 9), ("sllm.outcome_log", 0))
_EDGE_PHASES = (("sllm.edge.prefill", 1), ("sllm.edge.decode", 1))


def _attributes(count: int) -> dict[str, float]:
    return {f"sllm.attribute_{i}": i * 0.5 for i in range(count)}


class _Kept(SpanExporter):
    """Keeps what it is given until cleared."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _recorded(tracing: Tracing) -> None:
    """A request's spans as the router makes them (router/spans.py)."""
    request = RequestTrace(tracing, None, after_answer=lambda work: work())
    for name, count in _STEPS:
        step = request.step(name)
        step.attributes.update(_attributes(count))
        step.end()
        if name == EDGE:
            for phase, count in _EDGE_PHASES:
                inside = Step(phase, step.start_ns, end_ns=step.end_ns)
                inside.attributes.update(_attributes(count))
                step.children.append(inside)
    request.route.attributes.update(_attributes(_ROUTE_ATTRIBUTES))
    request.end()


def _sdk_spans(tracing: Tracing) -> None:
    """The same spans started and ended through the SDK's tracer: what the router did
    before its steps were recorded (the baseline)."""
    tracer = tracing.tracer
    route = tracer.start_span(ROUTE, kind=trace.SpanKind.SERVER)
    for name, count in _STEPS:
        span = tracer.start_span(name, context=trace.set_span_in_context(route))
        span.set_attributes(_attributes(count))
        span.end()
        if name == EDGE:
            for phase, count in _EDGE_PHASES:
                inside = tracer.start_span(phase, context=trace.set_span_in_context(span))
                inside.set_attributes(_attributes(count))
                inside.end()
    route.set_attributes(_attributes(_ROUTE_ATTRIBUTES))
    route.end()


@dataclass(frozen=True)
class SpanCpu:
    """Thread CPU per request, ms: the request's spans recorded, the same through the SDK,
    and their OTLP encoding (what the exporter's thread does with them)."""

    recorded_ms: float
    sdk_ms: float
    encoded_ms: float

    def figures(self) -> dict[str, float]:
        return {
            "tracing_spans_cpu_ms": self.recorded_ms,
            "tracing_spans_sdk_cpu_ms": self.sdk_ms,
            "tracing_spans_over_sdk": self.recorded_ms / self.sdk_ms,
            "tracing_encode_cpu_ms": self.encoded_ms,
        }

    def summary(self) -> str:
        return (
            f"a request's {1 + len(_STEPS) + len(_EDGE_PHASES)} spans, thread CPU: recorded "
            f"{self.recorded_ms:.3f} ms, through the SDK's tracer {self.sdk_ms:.3f} ms "
            f"(x{self.recorded_ms / self.sdk_ms:.2f}); OTLP encoding {self.encoded_ms:.3f} ms"
        )


def measure_span_cpu(blocks: int, per_block: int = 200) -> SpanCpu:
    """Medians over blocks, the three alternating block by block."""
    kept = _Kept()
    tracing = Tracing.to(kept, service="sllm-bench", batch=False)
    _recorded(tracing)
    spans = kept.spans * per_block
    work: dict[str, Callable[[], object]] = {
        "recorded": lambda: _recorded(tracing),
        "sdk": lambda: _sdk_spans(tracing),
    }
    cpu: dict[str, list[float]] = {"recorded": [], "sdk": [], "encoded": []}
    for _ in range(blocks):
        for name, one in work.items():
            kept.spans.clear()
            started = time.thread_time()
            for _ in range(per_block):
                one()
            cpu[name].append((time.thread_time() - started) * 1000.0 / per_block)
        started = time.thread_time()
        encode_spans(spans).SerializeToString()
        cpu["encoded"].append((time.thread_time() - started) * 1000.0 / per_block)
    return SpanCpu(*(statistics.median(cpu[name]) for name in ("recorded", "sdk", "encoded")))
