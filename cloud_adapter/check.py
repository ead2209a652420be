"""`sllm cloud check`: one call to the configured endpoint, or a diagnosis of why it fails."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

import httpx2

from cloud_adapter.causes import causes, connection_failure
from cloud_adapter.client import CloudClient, configured_api_key
from cloud_adapter.errors import (
    CloudAuthError,
    CloudBadRequest,
    CloudDeadlineExceeded,
    CloudError,
    CloudModelNotFound,
    CloudRateLimited,
)
from cloud_adapter.result import CloudResult
from sllm.chat import ChatMessage
from sllm.settings import CloudSettings

PROBE = [ChatMessage("user", "Reply with the single word OK.")]


@dataclass(frozen=True)
class CheckPassed:
    result: CloudResult


@dataclass(frozen=True)
class CheckFailed:
    diagnosis: str


async def check(settings: CloudSettings, *, timeout_s: float) -> CheckPassed | CheckFailed:
    """Lists the endpoint's models (when it can), then makes one small completion."""
    # One attempt: a diagnosis wants the first failure, not the last of several.
    client = CloudClient(settings.model_copy(update={"max_attempts": 1}))
    try:
        offered = await _offered_models(client, deadline=time.monotonic() + timeout_s)
        if offered is not None and settings.model not in offered:
            return CheckFailed(
                f"model not found: {settings.model!r} is not among the models "
                f"{settings.base_url} offers ({', '.join(offered) or 'none'}); "
                "set SLLM_CLOUD__MODEL"
            )
        result = await client.complete(PROBE, max_tokens=8, deadline=time.monotonic() + timeout_s)
    except CloudError as error:
        return CheckFailed(diagnose(error, settings, timeout_s=timeout_s))
    finally:
        await client.aclose()
    return CheckPassed(result)


async def _offered_models(client: CloudClient, *, deadline: float) -> list[str] | None:
    """None when the endpoint has no model list (some OpenAI-compatible servers)."""
    try:
        return await client.list_models(deadline=deadline)
    except CloudBadRequest:
        return None


def diagnose(error: CloudError, settings: CloudSettings, *, timeout_s: float) -> str:
    url = settings.base_url
    chain = causes(error)

    def caused_by(*kinds: type[BaseException]) -> bool:
        return any(isinstance(cause, kinds) for cause in chain)

    timed_out = caused_by(CloudDeadlineExceeded, TimeoutError, httpx2.TimeoutException)
    if timed_out and connection_failure(error) is None:
        return (
            f"timeout: no answer from {url} within {timeout_s:g} s; the server is overloaded, "
            "or something drops the packets (firewall, wrong host)"
        )
    if isinstance(error, CloudAuthError):
        if configured_api_key(settings) is None:
            return (
                f"bad key: {url} wants an API key and none is set "
                f"(SLLM_CLOUD__API_KEY or OPENAI_API_KEY): {error}"
            )
        return f"bad key: {url} rejected the API key (SLLM_CLOUD__API_KEY): {error}"
    if isinstance(error, CloudModelNotFound):
        return f"model not found: {error}; set SLLM_CLOUD__MODEL"
    if isinstance(error, CloudBadRequest) and "HTTP 404" in str(error):
        return (
            f"bad URL: {url} has no chat completions API (HTTP 404); "
            "OpenAI-compatible base URLs usually end in /v1"
        )
    if isinstance(error, CloudRateLimited):
        return f"rate limited: {error}"
    fix = "start the server (e.g. `sllm cloud standin`) or fix SLLM_CLOUD__BASE_URL"
    # The deepest: aiohttp's own error is an SSLCertVerificationError too, without the why.
    unverified = [c for c in chain if isinstance(c, ssl.SSLCertVerificationError)]
    if unverified:
        why = getattr(unverified[-1], "verify_message", None) or unverified[-1]
        return (
            f"TLS: the certificate of {url} cannot be verified ({why}); "
            "if its CA is a private one, name its PEM file in SSL_CERT_FILE"
        )
    if caused_by(ConnectionRefusedError):
        return f"bad URL or nothing listening: {url} refused the connection; {fix}"
    if caused_by(socket.gaierror):
        return f"bad URL: cannot resolve the host of {url}; fix SLLM_CLOUD__BASE_URL"
    if caused_by(httpx2.ConnectError, OSError):
        return f"bad URL or nothing listening: cannot connect to {url}; {fix}"
    return f"the endpoint failed: {error}"
