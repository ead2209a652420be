"""`sllm bench signals [--live TABLE] [--cache DIR] [--json PATH] [--quick]`; heavy
imports wait for the handler."""

from __future__ import annotations

import argparse
from pathlib import Path

from sllm.cli import SubParsers

HELP = "difficulty signals: routing quality on unseen groups vs decision time"


def _run(args: argparse.Namespace) -> int:
    from bench.signals.run import run

    return run(args)


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("signals", help=HELP)
    parser.add_argument(
        "--live", metavar="TABLE", help="the bundled edge's outcomes (sllm outcomes collect)"
    )
    parser.add_argument(
        "--cache",
        default=str(Path.home() / ".cache" / "sllm" / "signals"),
        help="where the tables' embeddings are kept",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="a quarter of MMLU's rows")
    parser.set_defaults(handler=_run)
