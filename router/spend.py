"""Per-tenant cloud spend over a sliding window, for the tenant cost budget.

A request that may call the cloud first holds its estimated cost (`hold`), so that
requests running at once cannot all spend what only one of them may; when it ends, the
hold becomes what the cloud really cost (`settle`, zero when the cloud was not called).
A tenant may start cloud calls while its spend in the window, holds included, is below
its budget. `TenantSpend` keeps the window in this process (one router);
router/store/postgres_spend.py keeps it in the fleet's store.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Hold:
    """A request's claim on its tenant's budget."""

    tenant: str
    # What the tenant could still spend before this hold; None: no budget.
    remaining_usd: float | None
    # The held charge; None when nothing was held (no budget, or it is spent).
    key: int | None


class Spend(Protocol):
    budget_usd: float | None

    def remaining(self, tenant: str) -> float | None:
        """The latest figure this process knows, without I/O; None when unlimited."""
        ...

    async def hold(self, tenant: str, usd: float) -> Hold:
        """Holds `usd` while the tenant's budget is not spent; atomic."""
        ...

    async def settle(self, hold: Hold, usd: float) -> None:
        """Replaces the held amount by what was spent."""
        ...

    async def aclose(self) -> None: ...


class TenantSpend:
    def __init__(
        self,
        *,
        budget_usd: float | None,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_usd = budget_usd
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        # tenant -> key -> (when, usd), oldest first.
        self._charges: defaultdict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
        self._keys = itertools.count(1)

    def remaining(self, tenant: str) -> float | None:
        if self.budget_usd is None:
            return None
        with self._lock:
            return self.budget_usd - self._spent(tenant)

    async def hold(self, tenant: str, usd: float) -> Hold:
        if self.budget_usd is None:
            return Hold(tenant, None, None)
        with self._lock:
            remaining = self.budget_usd - self._spent(tenant)
            if remaining <= 0:
                return Hold(tenant, remaining, None)
            key = next(self._keys)
            self._charges[tenant][key] = (self._clock(), usd)
        return Hold(tenant, remaining, key)

    async def settle(self, hold: Hold, usd: float) -> None:
        if hold.key is None:
            return
        with self._lock:
            charges = self._charges[hold.tenant]
            held = charges.pop(hold.key, None)
            if held is not None and usd > 0:
                charges[hold.key] = (held[0], usd)

    async def aclose(self) -> None:
        pass

    def _spent(self, tenant: str) -> float:
        charges = self._charges[tenant]
        horizon = self._clock() - self._window_s
        for key in [key for key, (when, _) in charges.items() if when < horizon]:
            del charges[key]
        return sum(usd for _, usd in charges.values())
