"""The latency budget of a query: from the request, else its gRPC deadline, else the default."""

from __future__ import annotations

from router.record import BudgetSource


def latency_budget(
    requested_ms: int | None, grpc_remaining_s: float | None, default_ms: int
) -> tuple[float, BudgetSource]:
    """The budget in ms and where it came from; an earlier gRPC deadline always wins."""
    grpc_ms = grpc_remaining_s * 1000.0 if grpc_remaining_s is not None else None
    if requested_ms is not None and (grpc_ms is None or requested_ms <= grpc_ms):
        return float(requested_ms), "request"
    if grpc_ms is not None:
        return max(grpc_ms, 0.0), "grpc_deadline"
    return float(default_ms), "default"
