"""The ASGI app: OpenAI's chat completions API over a `Router` (the gRPC service's own).

Auth belongs here, once, for every route, when the router has API tokens (the deployment
issue adds them; until then the door is as open as the gRPC port)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from router.cascade import RouteFailed
from router.http import auth, errors, mapping, status
from router.http.limits import BodyLimit
from router.http.schema import ChatCompletionRequest, FeedbackBody, SllmOptions
from router.http.streaming import Chunks, sse
from router.outcomes import OutcomeLogFull
from router.pipeline import Router
from router.policy import NoRoute
from router.validate import check_feedback
from sllm.status import DEFAULT_RETRY_AFTER_S
from sllm.tracing import caller_context
from sllm.v1 import router_pb2
from sllm.wire import InvalidRequest

# Documented for every route that reads a body; listing "4XX" also keeps FastAPI from
# documenting a 422 the app never sends.
_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "model": errors.ErrorBody,
        "description": "bad input (400), unknown model (404), "
        "body too large (413), tiers saturated (429, with Retry-After)",
    },
    "5XX": {
        "model": errors.ErrorBody,
        "description": "no tier can answer (503), past the deadline (504)",
    },
}
_DECISION_HEADERS = {
    name: {"schema": {"type": "string"}, "description": "unary answers only"}
    for name in ("x-sllm-route", "x-sllm-reason", "x-sllm-policy-version")
}
_COMPLETION_RESPONSES = _ERRORS | {
    200: {
        "description": "a chat.completion, or with `stream` a text/event-stream of "
        "chat.completion.chunk events ending `data: [DONE]`; the decision in `sllm`",
        "headers": _DECISION_HEADERS | {"x-sllm-request-id": {"schema": {"type": "string"}}},
    }
}


def _option_headers() -> list[dict[str, Any]]:
    """The `x-sllm-*` headers, documented as what they are: the `sllm` object's fields."""
    fields = SllmOptions.model_json_schema()["properties"]
    return [
        {"name": mapping.header_name(name), "in": "header", "required": False, "schema": schema}
        for name, schema in fields.items()
    ]


class AfterResponse:
    """What the router leaves for once the answer has gone (the request's spans): run as
    the response's background task, or at once when the request ends in an error."""

    def __init__(self) -> None:
        self._work: list[Callable[[], None]] = []

    def __call__(self, work: Callable[[], None]) -> None:
        self._work.append(work)

    def run(self) -> None:
        work, self._work = self._work, []
        for item in work:
            item()

    def task(self) -> BackgroundTask:
        async def run() -> None:
            self.run()

        return BackgroundTask(run)


def create_app(router: Router) -> FastAPI:
    app = FastAPI(
        title="sllm",
        summary="OpenAI-compatible chat completions, routed between an edge and a cloud model",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=router.settings.http_max_body_bytes)
    errors.install(app)
    status.install(app, router)
    auth.install(app, router.access)

    @app.post(
        "/v1/chat/completions",
        responses=_COMPLETION_RESPONSES,
        openapi_extra={"parameters": _option_headers()},
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        sllm = mapping.options(body.sllm, request.headers)
        query = mapping.query(body, sllm, router.settings)
        traced = caller_context(request.headers) if router.tracing.enabled else None
        after = AfterResponse()
        try:
            if not body.stream:
                result = await router.generate(query, trace_context=traced, after_answer=after)
                return JSONResponse(
                    mapping.completion(result, model=body.model, max_tokens=query.max_tokens),
                    headers=mapping.headers(result),
                    background=after.task(),
                )
            request_id = uuid.uuid4().hex
            events = router.stream(
                query, request_id=request_id, trace_context=traced, after_answer=after
            )
            first = await anext(events)
        except (NoRoute, RouteFailed) as error:
            after.run()
            raise errors.unanswered(error) from None
        chunks = Chunks(request_id, body.model)
        return StreamingResponse(
            sse(
                first, events, chunks, resets=bool(sllm.stream_resets), max_tokens=query.max_tokens
            ),
            media_type="text/event-stream",
            headers={
                "x-sllm-request-id": request_id,
                "x-sllm-policy-version": router.policies.current.version,
                "cache-control": "no-cache",
            },
            background=after.task(),
        )

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "sllm"}
                for name in mapping.MODELS
            ],
        }

    @app.get("/healthz", responses={503: {"description": "neither tier can answer"}})
    async def healthz() -> JSONResponse:
        tiers = {"edge": router.edge_available, "cloud": router.cloud_available}
        ready = any(tiers.values())
        return JSONResponse({"ready": ready, **tiers}, 200 if ready else 503)

    @app.post("/v1/feedback", responses=_ERRORS)
    async def feedback(body: FeedbackBody) -> dict[str, Any]:
        request = router_pb2.FeedbackRequest(
            request_id=body.request_id, score=body.score, source=body.source
        )
        try:
            check_feedback(request)
            found = await router.outcomes.feedback(
                request.request_id, request.score, request.source or "user"
            )
        except InvalidRequest as error:
            raise errors.bad_request(str(error), error.field) from None
        except OutcomeLogFull as error:
            raise errors.HttpError(
                429,
                str(error),
                type="rate_limit_error",
                headers=errors.retry_after(DEFAULT_RETRY_AFTER_S),
            ) from None
        if not found:
            raise errors.HttpError(
                404,
                f"no logged request has request_id {body.request_id!r}",
                param="request_id",
                code="not_found",
            )
        return {}

    return app
