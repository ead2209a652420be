"""Live statistics since start-up, for `GetPolicy` and the HTTP door's status page."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from router.record import Route

# Decisions the status page lists, newest first.
RECENT_DECISIONS = 20


@dataclass(frozen=True, slots=True)
class RecentDecision:
    request_id: str
    at: float  # unix seconds
    route: Route
    reason: str
    total_ms: float
    edge_ms: float
    cloud_ms: float
    # The question, only when router.store_prompts allows keeping it.
    prompt: str | None


@dataclass
class LiveStats:
    requests: int = 0
    escalations: int = 0
    deadline_misses: int = 0
    routes: Counter[Route] = field(default_factory=Counter)
    recent: deque[RecentDecision] = field(default_factory=lambda: deque(maxlen=RECENT_DECISIONS))

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
