"""The latency budget of a query: from the request, else its gRPC deadline, else the default.

The router plans with less than the client gave it, never more:
- gRPC carries a deadline as a timeout of at most three significant digits, rounded *up*
  ("25100m" for 25 s): the server can see up to 1% more time than the client set, so a
  deadline's remaining time is shrunk by that much first;
- the reply still has to travel back after the router is done: `reply_margin_ms` (a
  setting, 5 ms by default) is kept for it, whatever the budget's source.
"""

from __future__ import annotations

from router.record import BudgetSource

# The most a gRPC timeout's encoding rounds up: one unit of a value of at least 100 units.
GRPC_TIMEOUT_ROUNDING = 0.01


def latency_budget(
    requested_ms: int | None,
    grpc_remaining_s: float | None,
    default_ms: int,
    *,
    reply_margin_ms: float,
) -> tuple[float, BudgetSource]:
    """The time in ms the router may plan with, and where it came from: the tighter of the
    request's budget and its gRPC deadline, else the default; less the reply's margin."""
    grpc_ms = (
        grpc_remaining_s * 1000.0 / (1.0 + GRPC_TIMEOUT_ROUNDING)
        if grpc_remaining_s is not None
        else None
    )
    budget_ms: float
    source: BudgetSource
    if requested_ms is not None and (grpc_ms is None or requested_ms <= grpc_ms):
        budget_ms, source = float(requested_ms), "request"
    elif grpc_ms is not None:
        budget_ms, source = grpc_ms, "grpc_deadline"
    else:
        budget_ms, source = float(default_ms), "default"
    return max(budget_ms - reply_margin_ms, 0.0), source
