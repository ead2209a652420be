"""The authorization core: an Authorization header and an action in, the caller (its
tenant and roles) out, or `Refused` saying why. Plain inputs, no I/O once built, so both
doors make the same decisions and tests check them without a server.

Tokens are kept as SHA-256 digests only and compared with `hmac.compare_digest` against
every known digest, so neither a stored token nor the time a check takes tells anything
about the tokens. No tokens at all: the router is open, as on a single box (`caller`
returns None and a request's tenant is whatever it says)."""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter, ValidationError

from sllm.settings import Role, RouterSettings, TokenGrant
from sllm.status import ErrorReason

# What a request asks to do. "describe": read what the router is (its policy, models,
# API description); health is not an action: it is always open.
Action = Literal["generate", "describe", "feedback", "rollback", "metrics"]
_ROLES_FOR: dict[Action, frozenset[Role]] = {
    "generate": frozenset({"generate", "admin"}),
    "describe": frozenset({"generate", "feedback", "metrics", "admin"}),
    "feedback": frozenset({"feedback", "admin"}),
    "rollback": frozenset({"admin"}),
    "metrics": frozenset({"metrics", "admin"}),
}
Status = Literal["unauthenticated", "permission_denied"]
HTTP_STATUS: dict[Status, HTTPStatus] = {
    "unauthenticated": HTTPStatus.UNAUTHORIZED,
    "permission_denied": HTTPStatus.FORBIDDEN,
}
_BEARER = "bearer "


class Refused(Exception):
    """The request may not go on: `status` unauthenticated (no valid token) or
    permission_denied (a valid token that may not do this), `reason` which rule refused
    it (for the gRPC status's ErrorInfo). The message never quotes the token."""

    def __init__(self, message: str, status: Status, reason: ErrorReason) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    roles: frozenset[Role]


# The caller of the request being served, set by the door that checked its token.
current_caller: ContextVar[Caller | None] = ContextVar("sllm_caller", default=None)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _grant_digest(grant: TokenGrant) -> bytes:
    if grant.token is not None:
        return _digest(grant.token.get_secret_value())
    assert grant.sha256 is not None
    return bytes.fromhex(grant.sha256)


_TokensFile = TypeAdapter(dict[Literal["tokens"], list[TokenGrant]])


def load_tokens_file(path: Path) -> list[TokenGrant]:
    """`tokens = [{sha256 = "...", tenant = "...", roles = [...]}, ...]` in TOML, or the
    same as JSON (a file named *.json). ValueError naming the file when it is wrong; the
    message shows no token."""
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        return _TokensFile.validate_python(data).get("tokens", [])
    except (OSError, ValueError) as error:
        detail = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            if isinstance(error, ValidationError)
            else str(error)
        )
        raise ValueError(f"router.tokens_file {path}: {detail}") from None


class Access:
    def __init__(self, grants: Iterable[TokenGrant]) -> None:
        self._callers: list[tuple[bytes, Caller]] = []
        for grant in grants:
            digest = _grant_digest(grant)
            if any(hmac.compare_digest(digest, known) for known, _ in self._callers):
                raise ValueError(f"a token of tenant {grant.tenant!r} is given twice")
            self._callers.append((digest, Caller(grant.tenant, frozenset(grant.roles))))

    @classmethod
    def from_settings(cls, settings: RouterSettings) -> Access:
        grants = list(settings.tokens)
        if settings.tokens_file is not None:
            grants += load_tokens_file(settings.tokens_file)
        return cls(grants)

    @property
    def open(self) -> bool:
        """No tokens: everyone who reaches a port may do anything."""
        return not self._callers

    @property
    def tenants(self) -> list[str]:
        return sorted({caller.tenant for _, caller in self._callers})

    def _authenticate(self, authorization: str | None) -> Caller:
        if not authorization or not authorization.lower().startswith(_BEARER):
            raise Refused(
                "this router needs an API token: send the header authorization: Bearer <token>",
                "unauthenticated",
                "TOKEN_MISSING",
            )
        digest = _digest(authorization[len(_BEARER) :].strip())
        found: Caller | None = None
        # Every digest is compared, so the time taken says nothing of which one matched.
        for known, caller in self._callers:
            if hmac.compare_digest(digest, known):
                found = caller
        if found is None:
            raise Refused("the API token is not valid", "unauthenticated", "TOKEN_INVALID")
        return found

    def caller(self, authorization: str | None, action: Action) -> Caller | None:
        """Who sends the request, allowed to do `action`; None when the router is open.
        `authorization`: the header's value, as sent. Raises `Refused`."""
        if self.open:
            return None
        caller = self._authenticate(authorization)
        allowed = _ROLES_FOR[action]
        if not caller.roles & allowed:
            raise Refused(
                f"this token may not {action}: that needs the role " + " or ".join(sorted(allowed)),
                "permission_denied",
                "ROLE_MISSING",
            )
        return caller

    def metrics_status(self, authorization: str | None) -> HTTPStatus | None:
        """None when the metrics may be read with this header, else the refusal's status."""
        try:
            self.caller(authorization, "metrics")
        except Refused as refused:
            return HTTP_STATUS[refused.status]
        return None


def tenant_of(caller: Caller | None, claimed: str) -> str:
    """The tenant a request works for: its token's, which an empty `tenant` takes and no
    request may name another than; open (no caller), the one it names."""
    if caller is None:
        return claimed or "default"
    if claimed and claimed != caller.tenant:
        raise Refused(
            f"tenant {claimed!r} is not this token's: leave tenant empty or send {caller.tenant!r}",
            "permission_denied",
            "TENANT_MISMATCH",
        )
    return caller.tenant


def request_tenant(claimed: str) -> str:
    """`tenant_of` the request being served (its door set `current_caller`)."""
    return tenant_of(current_caller.get(), claimed)
