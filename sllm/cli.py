"""The `sllm` command. Each component registers its own sub-commands; heavy imports
(llama.cpp, onnxruntime, openai) happen inside the handlers so `sllm --help` stays fast."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

from sllm.logs import configure_logging
from sllm.settings import get_settings

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    # Generic only in the type stubs, not at run time.
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    SubParsers = argparse._SubParsersAction


def _dev_protos(args: argparse.Namespace) -> int:
    from sllm import codegen

    return codegen.run(check=args.check)


def _register_dev(sub: SubParsers) -> None:
    dev = sub.add_parser("dev", help="developer tools").add_subparsers(required=True)
    protos = dev.add_parser("protos", help="generate sllm/v1 from proto/ (or --check it)")
    protos.add_argument("--check", action="store_true", help="exit 1 if generated code is stale")
    protos.set_defaults(handler=_dev_protos)


def _doctor(args: argparse.Namespace) -> int:
    from sllm.doctor import run_checks

    checks = []
    for check in run_checks(get_settings(), edge_process=args.edge_process):
        checks.append(check)
        if not args.json:
            print(check.line(), flush=True)
    if args.json:
        print(json.dumps([dataclasses.asdict(check) for check in checks], indent=2))
    return 0 if all(check.ok for check in checks) else 1


def _register_doctor(sub: SubParsers) -> None:
    doctor = sub.add_parser(
        "doctor", help="check this installation: versions, CPU, engine, cloud, ports, outcome log"
    )
    doctor.add_argument(
        "--edge-process", action="store_true", help="check for `sllm up --edge-process`"
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as a JSON list")
    doctor.set_defaults(handler=_doctor)


def build_parser() -> argparse.ArgumentParser:
    from bench.cli import register as register_bench
    from cloud_adapter.cli import register as register_cloud
    from edge_worker.cli import register as register_edge
    from router.cli import register as register_router
    from router.learning.cli import register as register_learning

    parser = argparse.ArgumentParser(
        prog="sllm",
        description="Hybrid edge-cloud routing for language models.",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    # Groups that more than one component adds to.
    outcomes = sub.add_parser("outcomes", help="the outcome table: export, import")
    outcomes_sub = outcomes.add_subparsers(required=True, metavar="ACTION")
    register_router(sub, outcomes=outcomes_sub)
    register_learning(sub, outcomes=outcomes_sub)
    register_edge(sub)
    register_cloud(sub)
    register_bench(sub)
    _register_doctor(sub)
    _register_dev(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(get_settings().log)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
