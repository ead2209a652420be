"""Sub-commands of the edge worker: `sllm edge serve`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sllm.cli import SubParsers


def _serve(args: argparse.Namespace) -> int:
    from edge_worker.model import ModelLoadError
    from edge_worker.server import ListenError, serve
    from sllm.settings import get_settings
    from sllm.tracing import start_tracing

    overrides = {
        "model_path": args.model,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "queue_size": args.queue_size,
    }
    settings = get_settings().edge.model_copy(
        update={key: value for key, value in overrides.items() if value is not None}
    )
    tracing = start_tracing(get_settings().observability, service="sllm-edge")
    try:
        asyncio.run(serve(settings, tracing))
    except (ModelLoadError, ListenError) as error:
        print(f"sllm edge serve: {error}", file=sys.stderr)
        return 2
    return 0


def register(sub: SubParsers) -> None:
    edge = sub.add_parser("edge", help="the edge worker: a local model that exits early")
    edge_sub = edge.add_subparsers(required=True, metavar="ACTION")
    serve = edge_sub.add_parser("serve", help="serve the EdgeWorker gRPC API")
    serve.add_argument("--model", type=Path, help="a GGUF file (default: bundled SmolLM2-135M)")
    serve.add_argument("--port", type=int, help="gRPC port (0: any free port)")
    serve.add_argument("--metrics-port", type=int, help="Prometheus port (0: any free port)")
    serve.add_argument("--queue-size", type=int, help="requests that may wait for the model")
    serve.set_defaults(handler=_serve)
