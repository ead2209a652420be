"""No secret leaves the router: with a planted cloud API key and a planted API token (and
a wrong token a client sent), after good requests, refused ones and a failing cloud over
both doors, neither appears in the logs (structlog JSON, at debug), the /metrics text, the
decision records and the outcome log, the error messages, or `sllm doctor`'s output. The
prompts' planted personal data is not logged either (store_prompts is off)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.json_format import MessageToJson
from prometheus_client import REGISTRY, generate_latest

from sllm.logs import configure_logging
from sllm.settings import LogSettings, TokenGrant
from sllm.v1 import router_pb2
from tests.fixtures.cloud import StandInServer, running_standin
from tests.fixtures.edge import ROOT
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask

pytestmark = pytest.mark.slow

CLOUD_KEY = "sk-planted-cloud-key-7f3a9c0e"
TOKEN = "tok-planted-router-token-5d1e8b2a"
WRONG_TOKEN = "tok-wrong-guess-a91c77d3"
SECRETS = (CLOUD_KEY, TOKEN, WRONG_TOKEN)
PRIVATE = "jane.doe@example.org"
TOKENS = [TokenGrant(token=TOKEN, tenant="app", roles=["admin"])]


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(LogSettings(format="json", level="debug"), stream=out)
    yield out
    configure_logging(LogSettings(format="json"))


@pytest.fixture(scope="module")
def keyed_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandInServer]:
    """A cloud that wants another key than the planted one: every call is refused (401)."""
    with running_standin(tmp_path_factory.mktemp("keyed"), api_key="the-right-key") as server:
        yield server


async def exercise(router: RunningRouter, seen: list[str]) -> None:
    """Good, refused and failing requests over both doors; what clients saw goes in `seen`."""
    good = (("authorization", f"Bearer {TOKEN}"),)
    wrong = (("authorization", f"Bearer {WRONG_TOKEN}"),)
    for request in (ask(), ask(f"My address is {PRIVATE}. {ask().messages[0].content}")):
        response = await router.stub.Generate(request, metadata=good)
        seen.append(MessageToJson(response))
    cloud_only = ask(route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY)
    for request, metadata in ((ask(), wrong), (ask(), None), (cloud_only, good)):
        try:
            seen.append(MessageToJson(await router.stub.Generate(request, metadata=metadata)))
        except grpc.aio.AioRpcError as error:
            seen.append(f"{error.code().name}: {error.details()}")
    chat = {"model": "sllm-auto", "messages": [{"role": "user", "content": "Hi"}]}
    async with httpx.AsyncClient(base_url=router.http_url, timeout=60) as client:
        for token in (TOKEN, WRONG_TOKEN):
            reply = await client.post(
                "/v1/chat/completions", json=chat, headers={"authorization": f"Bearer {token}"}
            )
            seen.append(json.dumps(dict(reply.headers)) + reply.text)
        cloud = chat | {"model": "sllm-cloud"}
        reply = await client.post(
            "/v1/chat/completions", json=cloud, headers={"authorization": f"Bearer {TOKEN}"}
        )
        seen.append(reply.text)
    router.server.router.outcomes.flush()
    seen.append(json.dumps([dict(row) for row in router.server.router.outcomes.rows()]))


def doctor(tmp_path: Path, cloud: StandInServer) -> str:
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "SLLM_CLOUD__BASE_URL": cloud.base_url,
        "SLLM_CLOUD__API_KEY": CLOUD_KEY,
        "SLLM_ROUTER__TOKENS": json.dumps([{"token": TOKEN, "tenant": "app"}]),
        "SLLM_ROUTER__OUTCOME_DB": str(tmp_path / "outcomes.sqlite3"),
        "SLLM_LOG__LEVEL": "debug",
    }
    outputs = []
    for args in ((), ("--json",)):
        done = subprocess.run(
            [sys.executable, "-m", "sllm", "doctor", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        outputs.append(done.stdout + done.stderr)
    return "\n".join(outputs)


async def test_no_secret_anywhere(
    router_factory: RouterFactory,
    edge_server: Any,
    standin_server: StandInServer,
    keyed_standin: StandInServer,
    logs: io.StringIO,
    tmp_path: Path,
) -> None:
    seen: list[str] = []
    common: dict[str, Any] = {
        "edge_target": edge_server.target,
        "http": True,
        "pre": 1.0,
        "tokens": TOKENS,
    }
    # A cloud that answers (it ignores keys), one that refuses the key, one that is down.
    for cloud in (
        standin_server.settings(api_key=CLOUD_KEY),
        keyed_standin.settings(api_key=CLOUD_KEY, max_attempts=1),
        closed_cloud(api_key=CLOUD_KEY),
    ):
        await exercise(await router_factory(cloud=cloud, **common), seen)
    assert any("EDGE_FALLBACK" in text and "401" in text for text in seen), seen

    places = {
        "logs": logs.getvalue(),
        "metrics": generate_latest(REGISTRY).decode(),
        "responses, errors, decision records, outcome log": "\n".join(seen),
        "sllm doctor": doctor(tmp_path, keyed_standin),
    }
    assert "router.routed" in places["logs"] and "cloud" in places["sllm doctor"]
    for place, text in places.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {place}"
    assert PRIVATE not in places["logs"]
