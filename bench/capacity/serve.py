"""The router under measurement: `python -m bench.capacity.serve`, one process serving gRPC
and the HTTP door on free ports of 127.0.0.1, with `InstantEdge` in its process in place of
a model (its cloud is whatever SLLM_CLOUD__* name). Prints one JSON line with both
addresses once it serves; runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from bench.instant_edge import InstantEdge
from router.server import RouterServer, build_router
from sllm.logs import configure_logging
from sllm.settings import get_settings


async def main() -> None:
    settings = get_settings()
    configure_logging(settings.log)
    router = await build_router(settings, edge=InstantEdge())
    server = RouterServer(router, host="127.0.0.1", port=0, http_port=0)
    await server.start()
    assert server.http is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"grpc": server.target, "http": server.http.url}), flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(grace_s=1.0)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
