"""`sllm bench live [--quick] [--questions N] [--prior TABLE] [--keep DIR]`; heavy imports
wait for the handler."""

from __future__ import annotations

import argparse
from pathlib import Path

from sllm.cli import SubParsers

HELP = (
    "the learning loop on the real system: SmolLM2 edge worker, replay cloud and router "
    "over mixed ../shared/data questions with gold Feedback; learn on the first part, "
    "evaluate and route the rest"
)


def _run(args: argparse.Namespace) -> int:
    from bench.live.run import run

    return run(
        quick=args.quick, questions=args.questions, prior=args.prior, keep=args.keep, out=args.out
    )


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("live", help=HELP)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run (< 3 minutes): too few rows for a meaningful policy",
    )
    parser.add_argument(
        "--questions",
        type=int,
        metavar="N",
        help="questions in all, spread evenly over the seven tasks (default 602; --quick: 42)",
    )
    parser.add_argument(
        "--prior",
        type=Path,
        metavar="TABLE",
        help="outcome rows of the same edge model gathered earlier (e.g. by "
        "`sllm outcomes collect`), added to the rows the policy learns from",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the outcome log, tables, policies, figures and process logs "
        "in DIR (new or empty), e.g. to reuse the table as a --prior",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the routing-value table and figures (live.json) and "
        "its plot (live.png) into DIR",
    )
    parser.set_defaults(handler=_run)
