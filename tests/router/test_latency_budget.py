"""The latency budget the router plans with: never more than the client gave it (plain
numbers; the end-to-end check over gRPC is in test_routing.py)."""

from __future__ import annotations

import pytest

from router.budget import GRPC_TIMEOUT_ROUNDING, latency_budget

MARGIN = 5.0


@pytest.mark.parametrize("deadline_s", [0.05, 0.3, 1.0, 5.0, 25.0, 3600.0])
def test_a_grpc_deadline_seen_rounded_up_still_gives_less_than_the_client_set(
    deadline_s: float,
) -> None:
    # What gRPC's timeout encoding can deliver at worst: the deadline plus 1%.
    seen_s = deadline_s * (1.0 + GRPC_TIMEOUT_ROUNDING)
    budget_ms, source = latency_budget(None, seen_s, 30_000, reply_margin_ms=MARGIN)
    assert source == "grpc_deadline"
    assert budget_ms == pytest.approx(deadline_s * 1000.0 - MARGIN)


def test_the_tighter_of_request_and_deadline_wins_and_both_keep_the_margin() -> None:
    assert latency_budget(800, 2.0, 30_000, reply_margin_ms=MARGIN) == (795.0, "request")
    budget_ms, source = latency_budget(5_000, 1.01, 30_000, reply_margin_ms=MARGIN)
    assert (budget_ms, source) == (pytest.approx(995.0), "grpc_deadline")
    assert latency_budget(None, None, 30_000, reply_margin_ms=MARGIN) == (29_995.0, "default")


def test_a_deadline_already_spent_gives_a_budget_of_zero_not_a_negative_one() -> None:
    assert latency_budget(None, 0.001, 30_000, reply_margin_ms=MARGIN) == (0.0, "grpc_deadline")
    assert latency_budget(None, -0.5, 30_000, reply_margin_ms=MARGIN) == (0.0, "grpc_deadline")
