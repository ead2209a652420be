"""`sllm bench replay-cloud`: a REPLAY cloud endpoint for the live-loop benchmark.

An OpenAI-compatible server on 127.0.0.1 that answers the questions of ../shared/data
with GPT-4's recorded responses (GSM8K) or the gold answers (the other sets), with a
configurable latency. Unknown questions get a 404 (or, with --fallback-answer, that text).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Callable

import structlog

from sllm.cli import SubParsers

HOST = "127.0.0.1"

HELP = (
    "start a REPLAY cloud endpoint on 127.0.0.1: an OpenAI-compatible server answering the "
    "questions of ../shared/data with GPT-4's recorded responses (GSM8K, model "
    "'replay-gpt4') or their gold answers (other sets, model 'replay-gold'), with a "
    "configurable latency; prints the base URL"
)

log = structlog.get_logger("bench.replay")


def base_url(port: int) -> str:
    return f"http://{HOST}:{port}/v1"


async def serve(args: argparse.Namespace, *, on_ready: Callable[[str], None]) -> None:
    import uvicorn

    from bench.replay.app import build_app
    from bench.replay.book import ReplySource, load_book
    from bench.replay.latency import Latency

    latency = Latency(args.ttft_ms, args.ms_per_token, args.jitter_ms, args.seed)
    book = load_book()
    app = build_app(book, latency, fallback_answer=args.fallback_answer)
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    # Bound here, so that --port 0 gets a free port whose number is known before serving.
    # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY only on sockets that say it
    # (without, each answer waits ~40 ms for the client's delayed ACK).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, args.port))
        url = base_url(sock.getsockname()[1])

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                if self.started:
                    log.info(
                        "replay.listening",
                        base_url=url,
                        recorded=book.count(ReplySource.RECORDED),
                        gold=book.count(ReplySource.GOLD),
                        ttft_ms=latency.ttft_ms,
                        ms_per_token=latency.ms_per_token,
                        jitter_ms=latency.jitter_ms,
                    )
                    on_ready(url)

        await Server(config).serve(sockets=[sock])


def _print_ready(url: str) -> None:
    print(f"Replay cloud (recorded GPT-4 on GSM8K, gold answers elsewhere) ready at {url}")
    print(f"use it with: SLLM_CLOUD__BASE_URL={url} SLLM_CLOUD__MODEL=replay")
    sys.stdout.flush()


def _run(args: argparse.Namespace) -> int:
    try:
        asyncio.run(serve(args, on_ready=_print_ready))
    except (OSError, ValueError) as error:
        print(f"replay cloud failed to start: {error}", file=sys.stderr)
        return 1
    return 0


def _milliseconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 ms, got {text}")
    return value


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("replay-cloud", help=HELP, description=HELP)
    parser.add_argument("--port", type=int, default=8082, help="0: any free port (default 8082)")
    parser.add_argument("--ttft-ms", type=_milliseconds, default=0.0, help="time to first token")
    parser.add_argument(
        "--ms-per-token",
        type=_milliseconds,
        default=0.0,
        help="time per further token (~4 characters)",
    )
    parser.add_argument(
        "--jitter-ms",
        type=_milliseconds,
        default=0.0,
        help="up to this much more time to first token, random per request",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the jitter")
    parser.add_argument(
        "--fallback-answer",
        default=None,
        help="answer unknown questions with this text (model 'replay-fallback') instead of a 404",
    )
    parser.set_defaults(handler=_run)
