"""A fleet: two routers (in this process, on 127.0.0.1) sharing one PostgreSQL store.
Every request either acknowledged is logged; one tenant's budget holds across both when
they spend it at once; `sllm learn` reads the store and publishes a policy that both pick
up while serving, and a broken one that both refuse."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psycopg
import pytest

from router.store import open_store
from router.store.policies import pack
from sllm.cli import main
from sllm.v1 import router_pb2
from tests.fakes.edge import ScriptedEdge
from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask, route_name
from tests.router.test_relearn import planted, write_log

DOLLAR_PER_TOKEN = {"price_input_per_mtok": 1e6, "price_output_per_mtok": 1e6}


async def _fleet(
    router_factory: RouterFactory, url: str, **settings: object
) -> list[RunningRouter]:
    settings = {"cloud": closed_cloud()} | settings
    return [
        await router_factory(fake_edge=ScriptedEdge(), outcome_store=url, **settings)
        for _ in range(2)
    ]


async def test_two_routers_log_every_acknowledged_request_to_one_store(
    router_factory: RouterFactory, postgres_url: str
) -> None:
    fleet = await _fleet(router_factory, postgres_url)
    responses = await asyncio.gather(
        *(fleet[n % 2].stub.Generate(ask(f"Say {n}.", local_only=True)) for n in range(200))
    )
    for router in fleet:
        await router.server.stop(grace_s=0)  # the writer drains its queue before it stops
    acknowledged = {r.request_id for r in responses}
    assert len(acknowledged) == 200
    with psycopg.connect(postgres_url) as connection:
        logged = {rid for (rid,) in connection.execute("SELECT request_id FROM decisions")}
    assert logged == acknowledged


@pytest.mark.slow
async def test_two_routers_spending_one_tenant_budget_at_once_never_overspend_it(
    router_factory: RouterFactory, standin_server: StandInServer, postgres_url: str
) -> None:
    # Every cloud call costs more than the tenant's $1, so only one may start, however
    # many queries the two routers route at the same moment (pre=1.0: cloud first).
    fleet = await _fleet(
        router_factory,
        postgres_url,
        cloud=standin_server.settings(**DOLLAR_PER_TOKEN),
        pre=1.0,
        tenant_budget_usd=1.0,
    )
    mark = standin_server.access_log.mark()
    responses = await asyncio.gather(
        *(fleet[n % 2].stub.Generate(ask(tenant="acme", max_tokens=2)) for n in range(12))
    )
    routes = [route_name(r) for r in responses]
    assert routes.count("CLOUD") == 1 and routes.count("EDGE") == 11
    assert len(standin_server.access_log.completions(since=mark)) == 1
    spent = [r.decision.cost_usd for r in responses if route_name(r) == "CLOUD"]
    with psycopg.connect(postgres_url) as connection:
        charged = connection.execute(
            "SELECT usd FROM tenant_spend WHERE tenant = 'acme' AND usd > 0"
        ).fetchall()
    assert [usd for (usd,) in charged] == spent
    # Another tenant still has its own budget, on either router.
    other = await fleet[1].stub.Generate(ask(tenant="other", max_tokens=2))
    assert route_name(other) == "CLOUD"


async def _versions(fleet: list[RunningRouter]) -> set[str]:
    infos = [await r.stub.GetPolicy(router_pb2.GetPolicyRequest()) for r in fleet]
    return {info.version for info in infos}


async def _until(fleet: list[RunningRouter], version: str) -> None:
    for _ in range(200):
        if await _versions(fleet) == {version}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the routers still have {await _versions(fleet)}, not {version}")


async def test_learn_reads_the_store_and_every_router_picks_up_what_it_publishes(
    router_factory: RouterFactory, postgres_url: str, tmp_path: Path
) -> None:
    await write_log(postgres_url, planted())
    fleet = await _fleet(
        router_factory, postgres_url, policy_reload_interval_s=0.1, health_interval_s=0.05
    )
    before = await _versions(fleet)
    out = tmp_path / "policy"
    command = [
        "learn",
        "--data",
        postgres_url,
        "--target",
        "quality=0.9",
        "--out",
        str(out),
        "--quiet",
        "--publish",
    ]
    assert await asyncio.to_thread(main, command) == 0
    learned = json.loads((out / "policy.json").read_text())
    assert learned["version"] not in before
    await _until(fleet, learned["version"])
    # The policy's README names the data without the store's password.
    assert postgres_url.split("@")[0] not in (out / "README.md").read_text()
    answer = await fleet[0].stub.Generate(ask(local_only=True))
    assert answer.decision.policy_version == learned["version"]

    # A broken policy reaching the store is refused by every router, which keep serving.
    store = open_store(postgres_url)
    try:
        store.publish_policy("broken", pack(out) | {"scorer.onnx": b"not a model"})
    finally:
        store.close()
    await asyncio.sleep(0.5)
    assert await _versions(fleet) == {learned["version"]}
    still = await fleet[1].stub.Generate(ask(local_only=True))
    assert still.decision.policy_version == learned["version"]
