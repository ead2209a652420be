"""Shadow exploration end to end: the real edge worker answers, the real cloud stand-in is
called in the background (its access log shows each shadow call), the judge labels the
logged row, and `sllm outcomes export` writes the label with source `shadow`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from cloud_adapter import CloudClient
from router.outcome_table import read_table
from router.outcomes import OutcomeLog
from router.shadow import SHADOW_SOURCE, ShadowExplorer
from router.spend import TenantSpend
from router.store.sqlite import migrate
from router.validate import to_query
from sllm.settings import RouterSettings
from sllm.v1 import router_pb2
from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory, RunningRouter, closed_cloud
from tests.router.requests import ask, route_name
from tests.router.test_policy import SITUATION
from tests.router.test_relearn import logged

pytestmark = pytest.mark.slow
DOLLAR_PER_TOKEN = {"price_input_per_mtok": 1e6, "price_output_per_mtok": 1e6}


def shadow_calls(outcome: str) -> float:
    return REGISTRY.get_sample_value("sllm_router_shadow_calls_total", {"outcome": outcome}) or 0.0


async def generate(router: RunningRouter, request: router_pb2.RouteRequest) -> tuple[Any, bool]:
    """The response, and the `shadow` flag of its `router.routed` log line, once the
    shadow call it started (if any) has finished."""
    with capture_logs() as logs:
        response = await router.stub.Generate(request)
    await router.server.router.shadow.drain()
    (routed,) = [line for line in logs if line["event"] == "router.routed"]
    return response, routed["shadow"]


def export(db: Path, out: Path) -> list[Any]:
    result = subprocess.run(
        [sys.executable, "-m", "sllm", "outcomes", "export", "--db", str(db), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return read_table(out)


async def test_an_edge_answer_gets_a_shadow_label_in_the_exported_table(
    real_router: RouterFactory, standin_server: StandInServer, tmp_path: Path
) -> None:
    router = await real_router(shadow_probability=1.0, store_prompts=True)
    mark = standin_server.access_log.mark()
    labelled = shadow_calls("labelled")
    response, shadow = await generate(router, ask())
    assert route_name(response) == "EDGE"
    assert shadow is True
    assert len(standin_server.access_log.completions(since=mark)) == 1
    assert shadow_calls("labelled") == labelled + 1
    await router.server.stop(grace_s=0)

    (row,) = export(router.db, tmp_path / "table.jsonl")
    assert row.id == response.request_id
    assert (row.route, row.label_source, row.weight) == ("EDGE", "shadow", 1.0)
    assert row.edge_score in (0.0, 1.0)
    assert row.edge_answer == response.text
    # The cloud's reply is the reference; its own outcome stays unknown.
    assert row.cloud_answer
    assert row.cloud_score is None


async def test_no_shadow_call_for_local_only_or_edge_only_queries(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(shadow_probability=1.0)
    mark = standin_server.access_log.mark()
    local, local_shadow = await generate(router, ask(local_only=True))
    edge_only, edge_only_shadow = await generate(
        router, ask(route_hint=router_pb2.ROUTE_HINT_EDGE_ONLY)
    )
    assert [route_name(local), route_name(edge_only)] == ["EDGE", "EDGE"]
    assert (local_shadow, edge_only_shadow) == (False, False)
    assert standin_server.access_log.completions(since=mark) == []
    # The same question without the restriction is explored.
    _, shadow = await generate(router, ask())
    assert shadow is True
    assert len(standin_server.access_log.completions(since=mark)) == 1


async def test_no_shadow_call_beyond_the_tenant_budget_or_the_cost_ceiling(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    # Every cloud call costs more than the tenant's $1 budget.
    router = await real_router(
        cloud=standin_server.settings(**DOLLAR_PER_TOKEN),
        shadow_probability=1.0,
        tenant_budget_usd=1.0,
    )
    spent, _ = await generate(
        router, ask(tenant="acme", route_hint=router_pb2.ROUTE_HINT_CLOUD_ONLY)
    )
    assert route_name(spent) == "CLOUD"
    mark = standin_server.access_log.mark()
    exhausted, exhausted_shadow = await generate(router, ask(tenant="acme"))
    ceiling, ceiling_shadow = await generate(router, ask(tenant="other", cost_ceiling_usd=0.5))
    assert [route_name(exhausted), route_name(ceiling)] == ["EDGE", "EDGE"]
    assert (exhausted_shadow, ceiling_shadow) == (False, False)
    assert standin_server.access_log.completions(since=mark) == []

    # A tenant with budget left is explored, and pays for it: then its budget is spent.
    _, shadow = await generate(router, ask(tenant="other"))
    assert shadow is True
    assert len(standin_server.access_log.completions(since=mark)) == 1
    after, after_shadow = await generate(router, ask(tenant="other"))
    assert after.decision.budget.tenant_budget_remaining_usd < 0
    assert after_shadow is False


async def test_a_failing_shadow_call_leaves_the_answer_intact(
    router_factory: RouterFactory, edge_server: Any, tmp_path: Path
) -> None:
    router = await router_factory(
        edge_target=edge_server.target, cloud=closed_cloud(), shadow_probability=1.0
    )
    failed = shadow_calls("failed")
    response, shadow = await generate(router, ask())
    assert shadow is True
    assert shadow_calls("failed") == failed + 1
    assert route_name(response) == "EDGE"
    assert response.text
    assert not response.degraded
    await router.server.stop(grace_s=0)
    (row,) = export(router.db, tmp_path / "table.jsonl")
    assert (row.label_source, row.edge_score) == ("", None)


async def test_a_schema_1_log_takes_shadow_labels_after_its_migration(tmp_path: Path) -> None:
    # A log written before shadow exploration: schema 1 had no weight and no cloud text.
    db = tmp_path / "old.sqlite3"
    migrate(db, target=1)
    raw = sqlite3.connect(db)
    raw.executescript(
        "INSERT INTO decisions (request_id, created_at, tenant, client_request_id, "
        "prompt_sha256, answer_format, route, degraded, policy_version, p_edge_ok, answer, "
        "final_answer, cost_usd, total_ms, decision_json) VALUES ('r1', 0, '', '', '', "
        "'FREE_TEXT', 'EDGE', 0, 'v', 0.5, 'Paris', 'Paris', 0, 1, '{}');"
    )
    raw.close()
    log = OutcomeLog(db, store_prompts=False, queue_size=4)
    try:
        assert await log.feedback("r1", 1.0, SHADOW_SOURCE, weight=4.0, cloud_text="Paris.")
        (row,) = list(log.rows())
    finally:
        log.close()
    assert (row["feedback_weight"], row["feedback_cloud_text"]) == (4.0, "Paris.")


async def test_shadow_calls_are_bounded_in_flight_and_weighted_by_their_probability(
    standin_server: StandInServer, tmp_path: Path
) -> None:
    # The plain class, so that the draw is fixed and two queries can be considered
    # before the first call returns; the cloud and the outcome log are real.
    settings = RouterSettings(shadow_probability=0.25, shadow_max_in_flight=1)
    draws = iter([0.1, 0.1, 0.3])
    log = OutcomeLog(tmp_path / "log.sqlite3", store_prompts=False, queue_size=10)
    cloud = CloudClient(standin_server.settings())
    explorer = ShadowExplorer(
        settings,
        cloud=cloud,
        outcomes=log,
        spend=TenantSpend(budget_usd=None, window_s=60.0),
        draw=lambda: next(draws),
    )
    query = to_query(ask(), settings)
    first, second, third = (logged(f"r{n}", query.text) for n in range(3))
    for entry in (first, second, third):
        log.record(entry)
    mark = standin_server.access_log.mark()
    busy = shadow_calls("busy")
    try:
        started = [explorer.consider(query, e.result, SITUATION) for e in (first, second, third)]
        await explorer.drain()
        rows = {row["request_id"]: row for row in log.rows()}
    finally:
        await cloud.aclose()
        log.close()
    # The second was drawn but one call was in flight; the third was not drawn.
    assert started == [True, False, False]
    assert shadow_calls("busy") == busy + 1
    assert len(standin_server.access_log.completions(since=mark)) == 1
    assert (rows["r0"]["feedback_source"], rows["r0"]["feedback_weight"]) == ("shadow", 4.0)
    assert rows["r1"]["feedback_source"] is None and rows["r2"]["feedback_source"] is None
