"""A Python client of the Router API (proto/sllm/v1/router.proto): `RouterClient`, blocking,
and `AsyncRouterClient`, for asyncio, with the same calls. Requests take plain arguments,
answers are frozen dataclasses (`Result`, its `Decision`; `Delta`, `Reset` when streamed),
and every failed call raises `RouterError` with the router's error details.

    with RouterClient("127.0.0.1:50051", token=token, tls="ca.pem") as router:
        result = router.generate("Is the Pacific larger than the Atlantic?", latency_budget_ms=2000)
        print(result.text, result.route, result.decision.reason)
"""

from sllm.client.aio import AsyncRouterClient
from sllm.client.base import NETWORK_MARGIN_S, Messages, Options, Tls
from sllm.client.errors import ErrorDetails, FieldViolation, RouterError
from sllm.client.results import (
    Decision,
    Event,
    PolicyInfo,
    Result,
    RouteStats,
    Timings,
    UnknownValue,
)
from sllm.client.sync import RouterClient
from sllm.records import BudgetView, Delta, Reset

__all__ = [
    "NETWORK_MARGIN_S",
    "AsyncRouterClient",
    "BudgetView",
    "Decision",
    "Delta",
    "ErrorDetails",
    "Event",
    "FieldViolation",
    "Messages",
    "Options",
    "PolicyInfo",
    "Reset",
    "Result",
    "RouteStats",
    "RouterClient",
    "RouterError",
    "Timings",
    "Tls",
    "UnknownValue",
]
