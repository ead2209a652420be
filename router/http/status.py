"""The status page (`GET /`, static HTML and JS) and what it polls (`GET /status`): the
active policy and live statistics as `GetPolicy` reports them, the tiers, and the last
decisions; prompts only when `router.store_prompts` keeps them anyway."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from google.protobuf import json_format

from router import wire
from router.pipeline import Router

STATIC = Path(__file__).with_name("static")


def status(router: Router) -> dict[str, Any]:
    policy = json_format.MessageToDict(
        wire.policy_info(router.policies.current, router.stats),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return {
        "policy": policy,
        "tiers": {"edge": router.edge_available, "cloud": router.cloud_available},
        "recent": [dataclasses.asdict(decision) for decision in router.stats.recent],
    }


def install(app: FastAPI, router: Router) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/status")
    async def live() -> dict[str, Any]:
        return status(router)
