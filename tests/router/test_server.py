"""What a fleet's tooling sees of a router: reflection lists its services, health starts
SERVING while a tier may still answer (here: a cloud whose breaker has not opened yet)."""

from __future__ import annotations

from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.fixtures.router import CLOSED_PORT_TARGET, RouterFactory, closed_cloud


async def test_reflection_lists_the_router_and_health_services(
    router_factory: RouterFactory,
) -> None:
    router = await router_factory(edge_target=CLOSED_PORT_TARGET, cloud=closed_cloud())
    stub = reflection_pb2_grpc.ServerReflectionStub(router.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names = set()
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names |= {service.name for service in reply.list_services_response.service}
    assert {"sllm.v1.Router", "grpc.health.v1.Health"} <= names
    health = health_pb2_grpc.HealthStub(router.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="sllm.v1.Router"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
