"""The HTTP door's token check: `Authorization: Bearer <token>` (what the openai SDK
sends as its api_key) asked of the router's `Access` before any route runs, health
aside; the same decisions as the gRPC door's (router/auth). Refusals are OpenAI's 401
and 403 errors, so the SDK raises AuthenticationError and PermissionDeniedError."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from router import metrics
from router.auth.access import HTTP_STATUS, Access, Action, Refused, current_caller
from router.http.errors import HttpError

_OPEN_PATHS = frozenset({"/healthz"})
# Any other path (the models, the OpenAPI document, an unknown one) only describes.
_ACTIONS: dict[str, Action] = {"/v1/chat/completions": "generate", "/v1/feedback": "feedback"}
_CODES = {"unauthenticated": "invalid_api_key", "permission_denied": "permission_denied"}


def refusal(refused: Refused) -> HttpError:
    metrics.REFUSALS.labels(refused.status.upper()).inc()
    unauthenticated = refused.status == "unauthenticated"
    return HttpError(
        HTTP_STATUS[refused.status],
        str(refused),
        code=_CODES[refused.status],
        headers={"www-authenticate": "Bearer"} if unauthenticated else None,
    )


class TokenCheck:
    """Outermost, so that a request without a valid token costs no body reading."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self._app = app
        self._access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._access.open or scope["path"] in _OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        action = _ACTIONS.get(scope["path"], "describe")
        try:
            caller = self._access.caller(Headers(scope=scope).get("authorization"), action)
        except Refused as refused:
            await refusal(refused).response()(scope, receive, send)
            return
        current_caller.set(caller)
        await self._app(scope, receive, send)


def install(app: FastAPI, access: Access) -> None:
    """The check on every route, and a request that claims another tenant answered 403."""
    app.add_middleware(TokenCheck, access=access)

    async def refused(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Refused)
        return refusal(error).response()

    app.add_exception_handler(Refused, refused)
