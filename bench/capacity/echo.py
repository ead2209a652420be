"""The baseline: `python -m bench.capacity.echo`, a bare grpc.aio server with the router's
`Generate` that answers every request with one fixed RouteResponse (EDGE, "Paris"): no
routing at all, so its figures are what grpc.aio and this machine allow, measured in the
same run as the router's. With `--forward HOST:PORT` it answers nothing itself and passes
each request on to that server's `Generate`: a do-nothing hop, what a router in front of a
gRPC edge worker pays for being a second server before doing any work (`sllm bench
router`). Prints one JSON line with its address, like serve.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from bench.instant_edge import TEXT
from sllm.v1 import router_pb2, router_pb2_grpc

REPLY = router_pb2.RouteResponse(text=TEXT, final_answer=TEXT, route=router_pb2.ROUTE_EDGE)


Generate = Callable[
    [router_pb2.RouteRequest, grpc.aio.ServicerContext[Any, Any]],
    Awaitable[router_pb2.RouteResponse],
]


async def generate(
    request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> router_pb2.RouteResponse:
    return REPLY


def forwarding(target: str) -> Generate:
    stub = router_pb2_grpc.RouterStub(grpc.aio.insecure_channel(target))

    async def forward(
        request: router_pb2.RouteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> router_pb2.RouteResponse:
        reply: router_pb2.RouteResponse = await stub.Generate(request, timeout=30)
        return reply

    return forward


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forward", metavar="HOST:PORT", help="pass requests on to this server")
    args = parser.parse_args()
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        generate if args.forward is None else forwarding(args.forward),
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
