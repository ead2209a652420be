"""Tenant spend in PostgreSQL, shared by every router of a fleet.

A hold is one transaction: an advisory lock on the tenant, so that holds of one tenant
from any router run one after the other, then a single statement that sums the tenant's
window and inserts the hold only while that sum is below the budget. Windows are measured
with the database's clock, so the routers' clocks do not matter. Only tenants' budgets
cost round trips: with no budget set, nothing is held.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import structlog

from router.spend import Hold

log = structlog.get_logger("router.spend")

# The advisory-lock class of tenant holds (the second key is a hash of the tenant).
_TENANT_LOCK_CLASS = 0x736C6C6D
_HOLD = """
WITH gone AS (
    DELETE FROM tenant_spend
    WHERE tenant = %(tenant)s AND at <= now() - make_interval(secs => %(window_s)s)
), spent AS (
    SELECT COALESCE(SUM(usd), 0) AS usd FROM tenant_spend
    WHERE tenant = %(tenant)s AND at > now() - make_interval(secs => %(window_s)s)
), held AS (
    INSERT INTO tenant_spend (tenant, usd)
    SELECT %(tenant)s, %(usd)s FROM spent WHERE spent.usd < %(budget)s
    RETURNING id
)
SELECT spent.usd, held.id FROM spent LEFT JOIN held ON true
"""


class PostgresSpend:
    def __init__(self, url: str, *, budget_usd: float | None, window_s: float) -> None:
        self.budget_usd = budget_usd
        self._url = url
        self._window_s = window_s
        self._connection: psycopg.AsyncConnection[Any] | None = None
        # One connection per router: its holds take turns on it.
        self._lock = asyncio.Lock()
        # tenant -> remaining as this router last saw it, for figures that need no I/O.
        self._seen: dict[str, float] = {}

    def remaining(self, tenant: str) -> float | None:
        if self.budget_usd is None:
            return None
        return self._seen.get(tenant, self.budget_usd)

    async def hold(self, tenant: str, usd: float) -> Hold:
        if self.budget_usd is None:
            return Hold(tenant, None, None)
        try:
            # Shielded: a cancelled request must not leave the connection mid-transaction.
            # A hold it made then stays until the window passes: never an overspend.
            spent, key = await asyncio.shield(self._hold(tenant, usd, self.budget_usd))
        except psycopg.Error as error:
            # Without the ledger no router can know what is left: no cloud for budgets.
            log.error("spend.hold_failed", tenant=tenant, error=str(error))
            return Hold(tenant, 0.0, None)
        remaining = self.budget_usd - spent
        self._seen[tenant] = remaining - (usd if key is not None else 0.0)
        return Hold(tenant, remaining, key)

    async def _hold(self, tenant: str, usd: float, budget: float) -> tuple[float, int | None]:
        async with self._lock:
            connection = await self._connect()
            async with connection.transaction():
                await connection.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_TENANT_LOCK_CLASS, tenant)
                )
                cursor = await connection.execute(
                    _HOLD,
                    {"tenant": tenant, "usd": usd, "budget": budget, "window_s": self._window_s},
                )
                row = await cursor.fetchone()
        assert row is not None
        return float(row[0]), row[1]

    async def settle(self, hold: Hold, usd: float) -> None:
        if hold.key is None:
            return
        try:
            async with self._lock:
                connection = await self._connect()
                await connection.execute(
                    "UPDATE tenant_spend SET usd = %s WHERE id = %s", (usd, hold.key)
                )
        except psycopg.Error as error:
            # The hold, the call's estimated cost, stays instead.
            log.error("spend.settle_failed", tenant=hold.tenant, error=str(error))

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._connection = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        return self._connection

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.close()
