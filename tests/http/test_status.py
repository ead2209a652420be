"""The status page: static HTML and JS from the app, and the live status it polls (the
policy, route shares, the last decisions of both doors; prompts only when stored)."""

from __future__ import annotations

import httpx2
import pytest

from tests.http.conftest import DoorFactory
from tests.http.requests import complete
from tests.router.requests import EASY, ask

pytestmark = pytest.mark.slow


async def test_the_page_and_its_script_are_served(door: DoorFactory) -> None:
    router, _ = await door()
    async with httpx2.AsyncClient(base_url=router.http_url) as http:
        page = await http.get("/")
        script = await http.get("/static/status.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/status.js">' in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert 'fetch("/status")' in script.text


@pytest.mark.parametrize("store_prompts", [False, True])
async def test_the_status_lists_both_doors_decisions_and_prompts_only_when_stored(
    door: DoorFactory, store_prompts: bool
) -> None:
    router, client = await door(pre=0.0, cascade=0.0, store_prompts=store_prompts)
    over_http = await complete(client)
    over_grpc = await router.stub.Generate(ask())
    async with httpx2.AsyncClient(base_url=router.http_url) as http:
        status = (await http.get("/status")).json()
    policy = status["policy"]
    assert policy["version"].endswith("+test-0.0-0.0")
    assert policy["pre_generation_threshold"] == policy["cascade_threshold"] == 0.0
    assert policy["stats"]["requests"] == "2"  # uint64, as protobuf's JSON writes it
    assert policy["stats"]["route_share"] == {"EDGE": 1.0}
    assert status["tiers"] == {"edge": True, "cloud": True}
    recent = status["recent"]
    assert [d["request_id"] for d in recent] == [over_grpc.request_id, over_http.id]
    assert recent[0]["route"] == "EDGE" and recent[0]["reason"] == over_grpc.decision.reason
    assert recent[0]["total_ms"] >= recent[0]["edge_ms"] > 0
    assert [d["prompt"] for d in recent] == ([EASY, EASY] if store_prompts else [None, None])
