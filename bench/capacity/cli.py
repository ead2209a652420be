"""`sllm bench capacity [--quick] [--clients N] [--out DIR]`; heavy imports wait for the
handler."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.results import DEFAULT_OUT
from sllm.cli import SubParsers

HELP = (
    "requests/s and p50/p99 through one router process with INSTANT tiers (an edge "
    "in its process that answers at once, the replay cloud at zero latency), gRPC and "
    "HTTP, N clients from another process; router CPU per request"
)


def _run(args: argparse.Namespace) -> int:
    from bench.capacity.suite import run

    return run(quick=args.quick, clients=args.clients, out=args.out)


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("capacity", help=HELP)
    parser.add_argument("--quick", action="store_true", help="one pass of 4 s runs (~1 minute)")
    parser.add_argument(
        "--clients", type=int, default=16, metavar="N", help="concurrent clients (default 16)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where capacity.json goes (default {DEFAULT_OUT})",
    )
    parser.set_defaults(handler=_run)


ROUTER_CPU_HELP = (
    "the router's own CPU per request in one process (Router.generate from concurrent "
    "tasks, instant edge or zero-latency replay cloud, no door); --against DIR: paired "
    "with another checkout"
)


def _router_cpu(args: argparse.Namespace) -> int:
    from bench.capacity.router_cpu import run

    return run(
        route=args.route,
        requests=args.requests,
        tasks=args.tasks,
        rounds=args.rounds,
        against=args.against,
    )


def register_router_cpu(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("router-cpu", help=ROUTER_CPU_HELP)
    parser.add_argument("--route", choices=("EDGE", "CLOUD"), default="EDGE")
    parser.add_argument("--requests", type=int, default=3000, metavar="N", help="timed, a run")
    parser.add_argument("--tasks", type=int, default=16, metavar="N", help="concurrent tasks")
    parser.add_argument("--rounds", type=int, default=6, metavar="N")
    parser.add_argument(
        "--against",
        type=Path,
        metavar="DIR",
        help="another checkout (e.g. `git worktree add DIR REF`), run in every round too",
    )
    parser.set_defaults(handler=_router_cpu)
