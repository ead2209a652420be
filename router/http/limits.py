"""413 for a request body over the configured limit, before anything parses it.

FastAPI's own `max_body_size` answers a body declared too large in plain text, whatever
the app's error handlers say; OpenAI clients expect the error in OpenAI's shape."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.http.errors import HttpError


class BodyLimit:
    """ASGI middleware: a declared Content-Length over `max_bytes` is refused unread; a body
    without one is counted as it arrives, and refused once past the limit (the HttpError
    raised from `receive` reaches the app's error handler)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> HttpError:
        return HttpError(
            413,
            f"the request body is larger than {self.max_bytes} bytes "
            "(router.http_max_body_bytes): send a shorter prompt",
            code="request_too_large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large().response()(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self._too_large()
            return message

        await self.app(scope, counted, send)
