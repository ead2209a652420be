"""`sllm bench [all]` runs the suite (bench/suite); `sllm bench edge|router|http` one
benchmark (each module exposes `run(quick: bool) -> int`); `sllm bench replay-cloud` starts
a server for benchmarks; the rest have their own options too."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from bench import memory, replay_cloud, store
from bench.capacity import cli as capacity
from bench.deadlines import cli as deadlines
from bench.fuzz import cli as fuzz
from bench.live import cli as live
from bench.results import DEFAULT_OUT
from bench.signals import cli as signals
from sllm.cli import SubParsers

BENCHMARKS = {
    "edge": "edge worker throughput vs bare llama-cpp-python, and early exit on vs off",
    "router": "decision overhead, and latency added by the router over the edge worker",
    "http": "latency the HTTP door adds over the gRPC door, same router, same request",
}


def _run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"bench.{args.benchmark}")
    sizes = {
        name: getattr(args, name)
        for name in ("questions", "pairs", "max_tokens")
        if getattr(args, name, None) is not None
    }
    result: int = module.run(quick=args.quick, **sizes)
    return result


def _suite(args: argparse.Namespace) -> int:
    from bench.suite.run import run

    return run(size="quick" if args.quick else "full", out=args.out, only=args.only or ())


def _suite_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every benchmark, small (under 5 minutes); default: full (under 60)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where the JSON, plots and logs go (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="BENCHMARK", help="these benchmarks of the suite only"
    )
    parser.set_defaults(handler=_suite)


def _edge_sizes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--questions", type=int, metavar="N", help="early-exit questions")
    parser.add_argument("--pairs", type=int, metavar="N", help="throughput pairs")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="tokens per generation")


def register(sub: SubParsers) -> None:
    bench = sub.add_parser(
        "bench", help="benchmarks (figures in docs/benchmarks.md); without a BENCHMARK, all of them"
    )
    _suite_options(bench)
    bench_sub = bench.add_subparsers(metavar="BENCHMARK")
    _suite_options(bench_sub.add_parser("all", help="every benchmark in turn (the default)"))
    for name, help_text in BENCHMARKS.items():
        parser = bench_sub.add_parser(name, help=help_text)
        parser.add_argument("--quick", action="store_true", help="a short run (< 3 minutes)")
        if name == "edge":
            _edge_sizes(parser)
        parser.set_defaults(handler=_run, benchmark=name)
    replay_cloud.register(bench_sub)
    store.register(bench_sub)
    live.register(bench_sub)
    signals.register(bench_sub)
    capacity.register(bench_sub)
    capacity.register_router_cpu(bench_sub)
    memory.register(bench_sub)
    deadlines.register(bench_sub)
    fuzz.register(bench_sub)
