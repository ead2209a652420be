"""TLS from settings, the same for every door: gRPC credentials for servers and channels,
uvicorn's options for the HTTP door, and an `ssl` context for the metrics endpoints.

A server with `client_ca_file` asks every client for a certificate from that CA and
refuses the connection without one (mutual TLS)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from sllm.settings import TlsClientSettings, TlsSettings


def _read(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()


def _certificate(tls: TlsSettings) -> tuple[Path, Path]:
    if tls.cert_file is None or tls.key_file is None:
        raise ValueError("TLS is off: no cert_file and key_file")
    return tls.cert_file, tls.key_file


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    cert, key = _certificate(tls)
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=_read(tls.client_ca_file),
        require_client_auth=tls.client_ca_file is not None,
    )


def add_port(server: grpc.aio.Server, address: str, tls: TlsSettings) -> int:
    """Listens on `address`, over TLS when the settings have a certificate."""
    if not tls.enabled:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, server_credentials(tls))


def channel_credentials(
    tls: TlsClientSettings, options: Sequence[tuple[str, Any]] = ()
) -> tuple[grpc.ChannelCredentials, list[tuple[str, Any]]]:
    """What a secure channel with these settings takes: its credentials, and `options`
    (gRPC channel arguments) with the server's name when the settings give one."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file),
        private_key=_read(tls.key_file),
        certificate_chain=_read(tls.cert_file),
    )
    if tls.server_name is not None:
        options = [*options, ("grpc.ssl_target_name_override", tls.server_name)]
    return credentials, list(options)


def channel(
    target: str, tls: TlsClientSettings, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A channel to `target`, over TLS when the settings name a CA to trust; `options`:
    gRPC channel arguments."""
    if not tls.enabled:
        return grpc.aio.insecure_channel(target, options=options)
    credentials, options = channel_credentials(tls, options)
    return grpc.aio.secure_channel(target, credentials, options=options)


def uvicorn_options(tls: TlsSettings) -> dict[str, Any]:
    """uvicorn.Config's keyword arguments for these settings (none when TLS is off)."""
    if not tls.enabled:
        return {}
    cert, key = _certificate(tls)
    options: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if tls.client_ca_file is not None:
        options |= {"ssl_ca_certs": str(tls.client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    cert, key = _certificate(tls)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if tls.client_ca_file is not None:
        context.load_verify_locations(tls.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def scheme(tls: TlsSettings) -> str:
    return "https" if tls.enabled else "http"
