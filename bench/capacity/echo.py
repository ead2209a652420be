"""The baseline: `python -m bench.capacity.echo`, a bare grpc.aio server with the router's
`Generate` that answers every request with one fixed RouteResponse (EDGE, "Paris"): no
routing at all, so its figures are what grpc.aio and this machine allow, measured in the
same run as the router's. Prints one JSON line with its address, like serve.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import grpc

from bench.instant_edge import TEXT
from sllm.v1 import router_pb2

REPLY = router_pb2.RouteResponse(text=TEXT, final_answer=TEXT, route=router_pb2.ROUTE_EDGE)


async def generate(
    request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> router_pb2.RouteResponse:
    return REPLY


async def main() -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        generate,
        request_deserializer=router_pb2.RouteRequest.FromString,
        response_serializer=router_pb2.RouteResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("sllm.v1.Router", {"Generate": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"grpc": f"127.0.0.1:{port}"}), flush=True)
    await stop.wait()
    await server.stop(grace=None)


if __name__ == "__main__":
    asyncio.run(main())
