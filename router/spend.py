"""Per-tenant cloud spend over a sliding window, for the tenant cost budget."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable


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
        self._charges: defaultdict[str, deque[tuple[float, float]]] = defaultdict(deque)

    def remaining(self, tenant: str) -> float | None:
        """USD the tenant may still spend in the current window; None when unlimited."""
        if self.budget_usd is None:
            return None
        with self._lock:
            charges = self._charges[tenant]
            horizon = self._clock() - self._window_s
            while charges and charges[0][0] < horizon:
                charges.popleft()
            return self.budget_usd - sum(usd for _, usd in charges)

    def charge(self, tenant: str, usd: float) -> None:
        if self.budget_usd is None or usd <= 0:
            return
        with self._lock:
            self._charges[tenant].append((self._clock(), usd))
