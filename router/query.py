"""A routing request as plain Python: what the pipeline works on once validated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sllm.chat import ChatMessage

# Defined with their wire mapping in sllm/enums.py; named here too for the router's modules.
from sllm.enums import AnswerFormat as AnswerFormat
from sllm.enums import RouteHint as RouteHint


@dataclass(frozen=True, slots=True)
class Query:
    messages: Sequence[ChatMessage]
    max_tokens: int
    # None: take the gRPC deadline, else the configured default.
    latency_budget_ms: int | None
    cost_ceiling_usd: float | None
    route_hint: RouteHint
    local_only: bool
    answer_format: AnswerFormat
    tenant: str
    client_request_id: str

    @property
    def text(self) -> str:
        """The question the scorer judges: the last user message (system prompts aside)."""
        return next(m.content for m in reversed(self.messages) if m.role == "user")
