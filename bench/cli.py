"""`sllm bench edge|router`: each benchmark module exposes `run(quick: bool) -> int`;
`sllm bench replay-cloud` starts a server for benchmarks, `sllm bench live|signals` have
their own options too."""

from __future__ import annotations

import argparse
import importlib

from bench import replay_cloud, store
from bench.live import cli as live
from bench.signals import cli as signals
from sllm.cli import SubParsers

BENCHMARKS = {
    "edge": "edge worker throughput vs bare llama-cpp-python, and early exit on vs off",
    "router": "decision overhead, and latency added by the router over the edge worker",
    "http": "latency the HTTP door adds over the gRPC door, same router, same request",
}


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"bench.{args.benchmark}")
    result: int = module.run(quick=args.quick)
    return result


def register(sub: SubParsers) -> None:
    bench = sub.add_parser("bench", help="benchmarks (figures in docs/benchmarks.md)")
    bench_sub = bench.add_subparsers(required=True, metavar="BENCHMARK")
    for name, help_text in BENCHMARKS.items():
        parser = bench_sub.add_parser(name, help=help_text)
        parser.add_argument("--quick", action="store_true", help="a short run (< 3 minutes)")
        parser.set_defaults(handler=_run, benchmark=name)
    replay_cloud.register(bench_sub)
    store.register(bench_sub)
    live.register(bench_sub)
    signals.register(bench_sub)
