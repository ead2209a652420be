"""`sllm bench deadlines [--quick] [--questions N] [--out DIR]`; heavy imports wait for the
handler."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.results import DEFAULT_OUT
from sllm.cli import SubParsers

HELP = (
    "share of answers within latency budgets of 300 ms, 1 s and 3 s (SmolLM2 edge in "
    "the router, replay cloud at 400 ms + 30 ms/token), accuracy and route shares"
)


def _run(args: argparse.Namespace) -> int:
    from bench.deadlines.run import run

    return run(quick=args.quick, questions=args.questions, out=args.out)


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("deadlines", help=HELP)
    parser.add_argument("--quick", action="store_true", help="a short run (15 questions)")
    parser.add_argument(
        "--questions", type=int, metavar="N", help="questions in all, a third per task (default 60)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where deadlines.json and deadlines.png go (default {DEFAULT_OUT})",
    )
    parser.set_defaults(handler=_run)
