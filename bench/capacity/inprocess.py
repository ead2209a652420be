"""The router's own CPU per request, in one process and without a door:
`python -m bench.capacity.inprocess --route EDGE|CLOUD --requests N --tasks K`.

`Router.generate` from K concurrent tasks, each request converted from and to protobuf as
the gRPC servicer does, through the capacity benchmark's router (`build_router` with its
settings from the environment: `InstantEdge` in the process, the replay cloud named by
SLLM_CLOUD__*, JSON log, SQLite outcome log with its commit wait). No gRPC and no load
generator share the process or compete for its measurement, so the figure is the router's
work alone: `cpu_ms` is the CPU time of every thread of this process over the timed
requests, per request. Prints one JSON line. `sllm bench router-cpu` runs it, against
another checkout too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from bench.capacity.load import HINTS, grpc_request
from bench.instant_edge import InstantEdge
from router import wire
from router.server import build_router
from router.validate import to_query
from sllm.logs import configure_logging
from sllm.settings import get_settings


async def drive(route: str, *, requests: int, tasks: int, warmup: int) -> dict[str, float]:
    settings = get_settings()
    configure_logging(settings.log)
    router = await build_router(settings, edge=InstantEdge())
    request, expected = grpc_request(route)

    async def worker(count: int) -> None:
        for _ in range(count):
            result = await router.generate(to_query(request, router.settings))
            if wire.response(result).route != expected:
                raise RuntimeError(f"routed {result.route}: {result.decision.reason}")

    async def batch(total: int) -> None:
        await asyncio.gather(*(worker(total // tasks) for _ in range(tasks)))

    try:
        await batch(warmup)
        cpu, wall = time.process_time(), time.perf_counter()
        await batch(requests)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await router.aclose()
    answered = requests // tasks * tasks
    return {"cpu_ms": cpu * 1000.0 / answered, "requests_per_s": answered / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--route", choices=tuple(HINTS), required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=400)
    args = parser.parse_args()
    figures = asyncio.run(
        drive(args.route, requests=args.requests, tasks=args.tasks, warmup=args.warmup)
    )
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
