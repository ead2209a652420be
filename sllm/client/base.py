"""What the sync and the asyncio client share: the connection's credentials and token, a
request built from plain arguments, and each call's deadline. Only the calls differ."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import grpc

from sllm.chat import ChatMessage
from sllm.enums import ANSWER_FORMATS, ROLES, ROUTE_HINTS, AnswerFormat, RouteHint, known
from sllm.settings import TlsClientSettings
from sllm.tls import channel_credentials
from sllm.v1 import router_pb2
from sllm.wire import messages_to_wire

# One user message, or a conversation: `ChatMessage`s or OpenAI-style dicts
# {"role": "user", "content": "..."} (roles: system, user, assistant).
Messages = str | Sequence[ChatMessage | Mapping[str, str]]
# False: plaintext. True: TLS, trusting the system's CAs. A path: TLS, trusting the CA
# certificate(s) in that PEM file. Settings: also a client certificate (mutual TLS) and
# the name the server's certificate carries.
Tls = bool | str | Path | TlsClientSettings
# A call's deadline is its latency budget plus this, for the request's and the answer's
# way over the network: the router plans to answer within the budget itself.
NETWORK_MARGIN_S = 0.25


class Options(TypedDict, total=False):
    """A request's options (proto/sllm/v1/router.proto, RouteRequest); absent: the
    router's defaults."""

    max_tokens: int
    # Also the call's deadline, with NETWORK_MARGIN_S added.
    latency_budget_ms: int
    cost_ceiling_usd: float
    route_hint: RouteHint
    # The query never leaves the device (no cloud call, no shadow call).
    local_only: bool
    answer_format: AnswerFormat
    tenant: str
    client_request_id: str
    # The call's deadline in seconds when there is no latency budget, else a cap on it.
    timeout_s: float


def chat_messages(messages: Messages) -> list[ChatMessage]:
    if isinstance(messages, str):
        return [ChatMessage("user", messages)]
    plain = []
    for index, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            role = known(ROLES.numbers, message.get("role"))
            if role is None:
                raise ValueError(
                    f"messages[{index}].role is {message.get('role')!r}: "
                    "use system, user or assistant"
                )
            message = ChatMessage(role, message.get("content", ""))
        plain.append(message)
    return plain


Channel = TypeVar("Channel")
# What the sync and the asyncio client's `_unary` take and give.
Request = TypeVar("Request")
Response = TypeVar("Response")


def _credentials(tls: Tls) -> tuple[grpc.ChannelCredentials | None, list[tuple[str, Any]]]:
    if tls is False:
        return None, []
    if tls is True:
        return grpc.ssl_channel_credentials(), []
    if isinstance(tls, TlsClientSettings):
        # Settings without a CA are the settings' way to say "plaintext".
        return channel_credentials(tls) if tls.enabled else (None, [])
    return channel_credentials(TlsClientSettings(ca_file=Path(tls)))


class BaseClient(ABC):
    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: Tls = False,
        timeout_s: float | None = None,
    ) -> None:
        """`target`: the router's host:port. `token`: an API token (router.tokens), sent
        as `authorization: Bearer <token>`, the header the router checks (router/auth).
        `timeout_s`: the deadline of calls that set none (and no latency budget)."""
        self.target = target
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout_s = timeout_s
        self._credentials, self._channel_options = _credentials(tls)
        self._connect()

    @abstractmethod
    def _connect(self) -> None:
        """Opens the channel (`_open`) and makes the stub."""

    def _open(self, insecure: Callable[..., Channel], secure: Callable[..., Channel]) -> Channel:
        """A channel from grpc's `insecure_channel` or `secure_channel` (or grpc.aio's)."""
        if self._credentials is None:
            return insecure(self.target, options=self._channel_options)
        return secure(self.target, self._credentials, options=self._channel_options)

    def _route_request(
        self, messages: Messages, options: Options
    ) -> tuple[router_pb2.RouteRequest, float | None]:
        """The request and its deadline, in seconds from now (None: none)."""
        unknown = options.keys() - Options.__optional_keys__
        if unknown:
            raise TypeError(f"unknown options: {', '.join(sorted(unknown))}")
        request = router_pb2.RouteRequest(
            messages=messages_to_wire(chat_messages(messages)),
            route_hint=ROUTE_HINTS.numbers[options.get("route_hint", "AUTO")],
            local_only=options.get("local_only", False),
            answer_format=ANSWER_FORMATS.numbers[options.get("answer_format", "FREE_TEXT")],
            tenant=options.get("tenant", ""),
            client_request_id=options.get("client_request_id", ""),
        )
        # Set or not: these fields are proto3 `optional`, absent means the router's default.
        if "max_tokens" in options:
            request.max_tokens = options["max_tokens"]
        if "cost_ceiling_usd" in options:
            request.cost_ceiling_usd = options["cost_ceiling_usd"]
        timeout_s = self._call_timeout(options.get("timeout_s"))
        budget_ms = options.get("latency_budget_ms")
        if budget_ms is not None:
            request.latency_budget_ms = budget_ms
        # A budget <= 0 sets no deadline: the router answers INVALID_ARGUMENT, not the clock.
        if budget_ms is not None and budget_ms > 0:
            budget_s = budget_ms / 1000.0 + NETWORK_MARGIN_S
            timeout_s = budget_s if timeout_s is None else min(timeout_s, budget_s)
        return request, timeout_s

    def _call_timeout(self, timeout_s: float | None) -> float | None:
        return self._timeout_s if timeout_s is None else timeout_s
