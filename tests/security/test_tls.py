"""TLS and mutual TLS at every door: the router's gRPC port, its HTTP door and metrics, and
the router's hop to a remote edge worker. Certificates from tests/security/pki.py."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import httpx
import pytest

from sllm.settings import TlsClientSettings
from sllm.tls import channel
from sllm.v1 import router_pb2, router_pb2_grpc
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.edge import EdgeWorkerProcess
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask, route_name
from tests.security.pki import Identity, Pki

CHAT = {"model": "sllm-edge", "messages": [{"role": "user", "content": "Capital of France?"}]}
Channels = Callable[[str, TlsClientSettings], grpc.aio.Channel]


@pytest.fixture
async def channels() -> AsyncIterator[Channels]:
    opened: list[grpc.aio.Channel] = []

    def open_(target: str, tls: TlsClientSettings) -> grpc.aio.Channel:
        opened.append(channel(target, tls))
        return opened[-1]

    yield open_
    for each in opened:
        await each.close(grace=None)


def tls_router(
    router_factory: RouterFactory, pki: Pki, *, mutual: bool
) -> Awaitable[RunningRouter]:
    """A router (scripted edge, no cloud) with its HTTP door, over TLS."""
    return router_factory(
        fake_edge=ScriptedEdge(), cloud=closed_cloud(), http=True, tls=pki.server_tls(mutual=mutual)
    )


async def generate(channel: grpc.aio.Channel) -> router_pb2.RouteResponse:
    return await router_pb2_grpc.RouterStub(channel).Generate(ask(), timeout=10)


def http_client(pki: Pki, identity: Identity | None = None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=pki.ca)
    if identity is not None:
        context.load_cert_chain(identity.cert, identity.key)
    return httpx.AsyncClient(verify=context, timeout=10)


async def test_grpc_and_http_over_tls(
    router_factory: RouterFactory, pki: Pki, channels: Channels
) -> None:
    router = await tls_router(router_factory, pki, mutual=False)
    assert route_name(await generate(channels(router.target, pki.client_tls()))) == "EDGE"
    # A client that does not speak TLS, or does not trust the CA, gets nothing.
    for refused in (TlsClientSettings(), TlsClientSettings(ca_file=pki.stranger.cert)):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await generate(channels(router.target, refused))
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE

    assert router.http_url.startswith("https://")
    async with http_client(pki) as client:
        reply = await client.post(f"{router.http_url}/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"] == "Paris"
    async with httpx.AsyncClient(timeout=10) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{router.http_url}/healthz")  # the system's CAs do not know ours


async def test_mutual_tls_refuses_clients_without_a_certificate_from_the_ca(
    router_factory: RouterFactory, pki: Pki, channels: Channels
) -> None:
    router = await tls_router(router_factory, pki, mutual=True)
    assert route_name(await generate(channels(router.target, pki.client_tls(pki.client)))) == "EDGE"
    for identity in (None, pki.stranger):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await generate(channels(router.target, pki.client_tls(identity)))
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE

    async with http_client(pki, pki.client) as client:
        reply = await client.post(f"{router.http_url}/v1/chat/completions", json=CHAT)
        assert reply.status_code == 200
    for identity in (None, pki.stranger):
        async with http_client(pki, identity) as client:
            # TLS 1.3: the server's refusal arrives after the client's handshake is done.
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                await client.get(f"{router.http_url}/healthz")


async def test_the_router_reaches_an_edge_worker_over_mutual_tls(
    router_factory: RouterFactory,
    pki: Pki,
    edge_worker_factory: Callable[..., EdgeWorkerProcess],
) -> None:
    worker = edge_worker_factory(
        env={
            "SLLM_EDGE__TLS__CERT_FILE": str(pki.server.cert),
            "SLLM_EDGE__TLS__KEY_FILE": str(pki.server.key),
            "SLLM_EDGE__TLS__CLIENT_CA_FILE": str(pki.ca),
        }
    )
    assert worker.events("edge.listening")[0]["mutual_tls"] is True
    router = await router_factory(
        edge_target=worker.target, cloud=closed_cloud(), edge_tls=pki.client_tls(pki.client)
    )
    response = await router.stub.Generate(ask(route_hint=router_pb2.ROUTE_HINT_EDGE_ONLY))
    assert route_name(response) == "EDGE"
    assert response.text and not response.decision.edge_error

    # Without its certificate the router cannot use the worker: the edge is unavailable.
    stranger = await router_factory(
        edge_target=worker.target, cloud=closed_cloud(), edge_tls=pki.client_tls()
    )
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stranger.stub.Generate(ask(route_hint=router_pb2.ROUTE_HINT_EDGE_ONLY))
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "edge" in (error.value.details() or "")
