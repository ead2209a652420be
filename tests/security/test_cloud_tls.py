"""The cloud over HTTPS, as every real cloud is: the cloud client verifies the endpoint's
certificate, trusting the system's CAs or the one SSL_CERT_FILE names (as the openai
client does), and refuses an endpoint it cannot verify, with a diagnosis that says so.

The endpoint is the real stand-in behind a TLS-terminating proxy (asyncio's own TLS
server, passing bytes both ways), since the stand-in serves plain HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from cloud_adapter import CloudClient, CloudUnavailable
from cloud_adapter.causes import causes
from cloud_adapter.check import CheckFailed, check
from sllm.chat import ChatMessage
from tests.fixtures.cloud import StandInServer
from tests.security.pki import Pki

QUESTION = [ChatMessage("user", "Name a colour.")]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass  # the other side hung up, or a client refused the certificate
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tls_front(pki: Pki, plain_url: str) -> AsyncIterator[str]:
    """An https:// base URL for the server at `plain_url`, with the PKI's server
    certificate (127.0.0.1)."""
    target = urlsplit(plain_url)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server.cert, pki.server.key)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            target.hostname, target.port
        )
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}{target.path}"
    finally:
        server.close()


async def test_a_cloud_whose_certificate_is_trusted_answers_unary_and_streamed(
    pki: Pki, standin_server: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    async with tls_front(pki, standin_server.base_url) as url:
        client = CloudClient(standin_server.settings(base_url=url))
        try:
            answered = await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 60)
            chunks = [
                chunk
                async for chunk in client.stream(
                    QUESTION, max_tokens=4, deadline=time.monotonic() + 60
                )
            ]
        finally:
            await client.aclose()
    assert answered.text
    assert chunks[-1].result is not None and chunks[-1].result.text


async def test_a_cloud_whose_certificate_cannot_be_verified_is_refused_and_diagnosed(
    pki: Pki, standin_server: StandInServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with tls_front(pki, standin_server.base_url) as url:
        settings = standin_server.settings(base_url=url, max_attempts=1)
        client = CloudClient(settings)
        try:
            with pytest.raises(CloudUnavailable) as refused:
                await client.complete(QUESTION, max_tokens=4, deadline=time.monotonic() + 30)
        finally:
            await client.aclose()
        checked = await check(settings, timeout_s=10)
    assert any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes(refused.value))
    assert isinstance(checked, CheckFailed)
    assert checked.diagnosis.startswith("TLS: ")
    assert "SSL_CERT_FILE" in checked.diagnosis
