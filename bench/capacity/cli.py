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
