"""Sub-commands of the router: `up`, `ask`, `router serve`, `outcomes export`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from sllm.cli import SubParsers
from sllm.enums import AnswerFormat, RouteHint
from sllm.settings import get_settings

if TYPE_CHECKING:
    from sllm.client import RouterClient

_FORMATS = get_args(AnswerFormat)
_HINTS = get_args(RouteHint)


def _until_signalled(main: Coroutine[Any, Any, object]) -> int:
    """Runs `main` until it ends or SIGINT/SIGTERM arrives; either way its `finally`
    blocks run, so child processes and servers stop cleanly (also under systemd)."""

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await main

    asyncio.run(run())
    return 0


def _serving(command: str, main: Coroutine[Any, Any, object]) -> int:
    """`_until_signalled`, with a model that cannot be loaded (in-process edge) reported
    in one line and exit status 2, as `sllm edge serve` does."""
    from edge_worker.model import ModelLoadError

    try:
        return _until_signalled(main)
    except ModelLoadError as error:
        print(f"sllm {command}: {error}", file=sys.stderr)
        return 2


def _up(args: argparse.Namespace) -> int:
    from edge_worker.probe import probe_engine
    from router.launcher import up

    settings = get_settings()
    # An engine that crashes on this CPU would kill the router (and the stand-in, the
    # same engine) at the first prompt: found out first, in a child process.
    probe = None if args.skip_probe else probe_engine(settings.edge)
    if probe is not None and not probe.ok:
        print(f"sllm up: nothing started:\n{probe.line()}", file=sys.stderr)
        print("(sllm doctor checks the rest; --skip-probe starts anyway)", file=sys.stderr)
        return 2
    return _serving("up", up(settings, edge_process=args.edge_process))


def _serve(args: argparse.Namespace) -> int:
    from router.server import serve

    settings = get_settings()
    overrides = {"port": args.port, "edge_target": args.edge, "policy_dir": args.policy}
    router = settings.router.model_copy(
        update={key: value for key, value in overrides.items() if value is not None}
    )
    return _serving("router serve", serve(settings.model_copy(update={"router": router})))


def _client(args: argparse.Namespace) -> RouterClient:
    """The client of `sllm ask` and `sllm router rollback`: --target, else the router of
    the settings; the token and TLS of the settings' [client], --ca-file over its CA."""
    from sllm.client import RouterClient

    settings = get_settings()
    client = settings.client
    tls = client.tls
    if args.ca_file is not None:
        tls = tls.model_copy(update={"ca_file": args.ca_file})
    return RouterClient(
        args.target or f"{settings.router.host}:{settings.router.port}",
        token=client.token.get_secret_value() if client.token is not None else None,
        tls=tls,
    )


def _ask(args: argparse.Namespace) -> int:
    from router.ask import ask
    from sllm.client import Options

    options: Options = {
        "answer_format": args.format,
        "route_hint": args.route,
        "local_only": args.local_only,
        "tenant": args.tenant,
    }
    if args.budget_ms is not None:
        options["latency_budget_ms"] = args.budget_ms
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    with _client(args) as client:
        return ask(client, args.question, options, stream=args.stream)


def _rollback(args: argparse.Namespace) -> int:
    from router.ask import rollback

    with _client(args) as client:
        return rollback(client)


def _add_connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="router host:port (default: from settings)")
    parser.add_argument(
        "--ca-file",
        type=Path,
        help="TLS: the CA of the router's certificate (default: client.tls.ca_file); the "
        "token comes from client.token (SLLM_CLIENT__TOKEN)",
    )


def _export(args: argparse.Namespace) -> int:
    from router.export import export
    from router.store import SQLITE, StoreError
    from router.store.cli import chosen_store

    where = chosen_store(args.store or (f"{SQLITE}{args.db}" if args.db else None))
    path = Path(where.removeprefix(SQLITE))
    if where.startswith(SQLITE) and not path.is_file():
        print(f"sllm outcomes export: no outcome log at {path}", file=sys.stderr)
        return 1
    try:
        count = export(where, args.out, labelled_only=args.labelled_only)
    except StoreError as error:
        print(f"sllm outcomes export: {error}", file=sys.stderr)
        return 1
    print(f"wrote {count} rows to {args.out}")
    return 0


def register(sub: SubParsers, *, outcomes: SubParsers) -> None:
    from router.store.cli import add_store_option
    from router.store.cli import register as register_policy

    register_policy(sub)
    up = sub.add_parser(
        "up", help="start the edge worker, a cloud stand-in (unless configured) and the router"
    )
    up.add_argument(
        "--edge-process",
        action="store_true",
        help="run the edge worker as its own process (default: inside the router's, no hop)",
    )
    up.add_argument(
        "--skip-probe",
        action="store_true",
        help="start without first decoding a prompt in a child process (the engine probe)",
    )
    up.set_defaults(handler=_up)

    ask = sub.add_parser("ask", help="ask the running router; prints the decision record")
    ask.add_argument("question")
    ask.add_argument("--budget-ms", type=int, help="latency budget in milliseconds")
    ask.add_argument("--max-tokens", type=int)
    ask.add_argument("--format", choices=_FORMATS, default="FREE_TEXT", help="answer format")
    ask.add_argument("--route", choices=_HINTS, default="AUTO", help="route hint")
    ask.add_argument("--local-only", action="store_true", help="never leave this device")
    ask.add_argument("--tenant", default="")
    ask.add_argument("--stream", action="store_true", help="print text as it arrives")
    _add_connection(ask)
    ask.set_defaults(handler=_ask)

    router = sub.add_parser("router", help="the router alone")
    router_sub = router.add_subparsers(required=True, metavar="ACTION")
    serve = router_sub.add_parser("serve", help="serve the Router gRPC API")
    serve.add_argument("--port", type=int, help="gRPC port (0: any free port)")
    serve.add_argument(
        "--edge", help='edge worker host:port, or "in-process" to load the model in the router'
    )
    serve.add_argument("--policy", type=Path, help="policy directory")
    serve.set_defaults(handler=_serve)
    rollback = router_sub.add_parser(
        "rollback", help="make the running router return to its previous policy"
    )
    _add_connection(rollback)
    rollback.set_defaults(handler=_rollback)

    export = outcomes.add_parser("export", help="the router's outcome log as an outcome table")
    export.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    source = export.add_mutually_exclusive_group()
    source.add_argument("--db", type=Path, help="a SQLite outcome log's file")
    add_store_option(source)
    export.add_argument(
        "--labelled-only", action="store_true", help="only rows that received feedback"
    )
    export.set_defaults(handler=_export)
