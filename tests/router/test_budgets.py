"""Cost budgets end to end: a request's cost ceiling and a tenant's spend per window keep
traffic on the edge (real edge worker, real stand-in priced at $1 per token so that every
cloud call costs something)."""

from __future__ import annotations

import pytest

from tests.fixtures.cloud import StandInServer
from tests.fixtures.router import RouterFactory
from tests.router.requests import ask, route_name

pytestmark = pytest.mark.slow
DOLLAR_PER_TOKEN = {"price_input_per_mtok": 1e6, "price_output_per_mtok": 1e6}


async def test_a_cost_ceiling_below_the_cloud_estimate_keeps_the_query_on_the_edge(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(cloud=standin_server.settings(**DOLLAR_PER_TOKEN), pre=1.0)
    mark = standin_server.access_log.mark()
    response = await router.stub.Generate(ask(cost_ceiling_usd=0.5))
    assert route_name(response) == "EDGE"
    assert response.decision.budget.est_cloud_cost_usd > 0.5
    assert "exceeds the cost ceiling $0.500000" in response.decision.reason
    assert standin_server.access_log.completions(since=mark) == []


async def test_a_tenant_that_spent_its_budget_stays_on_the_edge_until_the_window_ends(
    real_router: RouterFactory, standin_server: StandInServer
) -> None:
    router = await real_router(
        cloud=standin_server.settings(**DOLLAR_PER_TOKEN), pre=1.0, tenant_budget_usd=1.0
    )
    first = await router.stub.Generate(ask(tenant="acme"))
    assert route_name(first) == "CLOUD"
    assert first.decision.budget.tenant_budget_remaining_usd == 1.0
    assert first.decision.cost_usd > 1.0
    second = await router.stub.Generate(ask(tenant="acme"))
    assert route_name(second) == "EDGE"
    assert second.decision.budget.tenant_budget_remaining_usd < 0
    assert "tenant 'acme' has spent its cloud budget" in second.decision.reason
    other = await router.stub.Generate(ask(tenant="other"))
    assert route_name(other) == "CLOUD"
