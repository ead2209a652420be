"""Live statistics since start-up, for `GetPolicy`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from router.record import Route


@dataclass
class LiveStats:
    requests: int = 0
    escalations: int = 0
    deadline_misses: int = 0
    routes: Counter[Route] = field(default_factory=Counter)

    def count(self, route: Route, *, escalated: bool, missed_deadline: bool) -> None:
        self.requests += 1
        self.routes[route] += 1
        self.escalations += escalated
        self.deadline_misses += missed_deadline

    def route_share(self) -> dict[str, float]:
        return {route: n / self.requests for route, n in self.routes.items()}

    @property
    def escalation_rate(self) -> float:
        return self.escalations / self.requests if self.requests else 0.0
