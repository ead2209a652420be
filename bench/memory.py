"""`sllm bench memory [--quick] [--out DIR]`: RSS of an edge worker, a router calling it
over gRPC and a router with the edge in its process, idle and under load, measured by
deploy/k8s/measure_rss.py (the figures that size the Kubernetes manifests' resources),
run as a child process; writes memory.json and prints the MiB figures as key=value last."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.results import DEFAULT_OUT, headline
from sllm import children
from sllm.cli import SubParsers

SCRIPT = Path(__file__).resolve().parent.parent / "deploy" / "k8s" / "measure_rss.py"
HELP = (
    "RSS (idle, peak under load, VmHWM) of an edge worker and of a router with and "
    "without the edge in its process (deploy/k8s/measure_rss.py)"
)
# Headline names of measure_rss.py's processes.
KEYS = {
    "edge worker": "edge_worker",
    "router (edge over gRPC)": "router_grpc_edge",
    "router (edge in-process)": "router_in_process",
}


def _run(args: argparse.Namespace) -> int:
    requests, concurrency = (12, 4) if args.quick else (48, 8)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "memory.json"
    command = [
        sys.executable,
        str(SCRIPT),
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
        "--json",
        str(path),
    ]
    done = children.run(command, timeout=1800)
    print(done.stdout, end="")
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr)
        return done.returncode
    processes = json.loads(path.read_text(encoding="utf-8"))["processes"]
    figures = {
        f"{KEYS[name]}_{state}_mib": kib[f"{state}_kib"] / 1024.0
        for name, kib in processes.items()
        for state in ("idle", "load", "hwm")
    }
    print(headline(figures))
    return 0


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("memory", help=HELP)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="12 requests from 4 clients per router (default 48 from 8)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"where memory.json goes (default {DEFAULT_OUT})",
    )
    parser.set_defaults(handler=_run)
