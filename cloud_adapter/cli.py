"""`sllm cloud check` and `sllm cloud standin`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from sllm.cli import SubParsers
from sllm.settings import get_settings

STANDIN_HELP = (
    "start a local STAND-IN for a cloud model: llama_cpp.server with a small GGUF model "
    "(the bundled SmolLM2-135M by default) on 127.0.0.1. It speaks the same "
    "OpenAI-compatible API as a cloud endpoint but has none of a cloud model's quality: "
    "for demos and tests without internet"
)


def _check(args: argparse.Namespace) -> int:
    from cloud_adapter.check import CheckPassed, check

    settings = get_settings().cloud
    overrides = {"base_url": args.base_url, "model": args.model}
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    outcome = asyncio.run(check(settings, timeout_s=args.timeout))
    if not isinstance(outcome, CheckPassed):
        print(f"FAILED  {outcome.diagnosis}")
        return 1
    result = outcome.result
    print(f"endpoint  {settings.base_url}")
    print(f"model     {result.model}")
    print(f"latency   {result.latency_ms:.0f} ms")
    print(f"tokens    {result.prompt_tokens} prompt + {result.completion_tokens} completion")
    print(f"cost      ${result.cost_usd:.6f}")
    print(f"answer    {result.text.strip()!r}")
    return 0


def _standin(args: argparse.Namespace) -> int:
    from cloud_adapter import standin

    cloud = get_settings().cloud
    port = args.port if args.port is not None else cloud.standin_port
    alias = args.alias or cloud.model
    try:
        # The server's own log goes to stderr; stdout has only what to connect to.
        server = standin.start(
            port=port,
            model_path=args.model,
            model_alias=alias,
            api_key=args.api_key,
            n_ctx=args.n_ctx,
            output=sys.stderr.fileno(),
            extra_buffers=get_settings().edge.extra_buffers,
        )
    except standin.StandInFailed as error:
        print(f"stand-in failed to start: {error}", file=sys.stderr)
        return 1
    print(f"Stand-in cloud (llama_cpp.server, NOT a cloud model) ready at {server.base_url}")
    print(f"model name: {server.model}")
    print(f"use it with: SLLM_CLOUD__BASE_URL={server.base_url} SLLM_CLOUD__MODEL={server.model}")
    sys.stdout.flush()
    # SIGTERM too must stop the server, not orphan it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return server.process.wait()
    finally:
        server.stop()


def register(sub: SubParsers) -> None:
    """Adds this component's sub-commands; the handlers import what they need."""
    cloud = sub.add_parser("cloud", help="the cloud adapter: check the endpoint, local stand-in")
    cloud_sub = cloud.add_subparsers(required=True, metavar="ACTION")

    check = cloud_sub.add_parser(
        "check",
        help="call the configured endpoint once: model, latency, tokens, cost, or a diagnosis",
    )
    check.add_argument("--base-url", help="instead of settings cloud.base_url")
    check.add_argument("--model", help="instead of settings cloud.model")
    check.add_argument("--timeout", type=float, default=20.0, help="seconds (default 20)")
    check.set_defaults(handler=_check)

    standin = cloud_sub.add_parser("standin", help=STANDIN_HELP, description=STANDIN_HELP)
    standin.add_argument("--model", type=Path, help="GGUF file (default: bundled SmolLM2-135M)")
    standin.add_argument("--port", type=int, help="default: settings cloud.standin_port (8081)")
    standin.add_argument("--alias", help="model name it answers to (default: cloud.model)")
    standin.add_argument("--api-key", help="require this API key (default: none)")
    standin.add_argument("--n-ctx", type=int, default=2048, help="context size (default 2048)")
    standin.set_defaults(handler=_standin)
