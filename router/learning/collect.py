"""`sllm outcomes collect`: an outcome table from running the edge worker on questions with
gold answers. Every row has the edge's answer, its confidence signals and a judged score
(sllm.answers matching against gold), so a cascade model can be learned for that edge
model without any traffic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import structlog
from tqdm import tqdm

from router.edge_client import EdgeAnswer, EdgeCall, EdgeClient, EdgeError
from router.learning.datasets import Question
from router.outcome_table import OutcomeRow
from router.policy import ReasoningMode
from router.query import AnswerFormat as QueryAnswerFormat
from router.signals import EdgeSignals
from sllm.answers import answers_match
from sllm.chat import ChatMessage

log = structlog.get_logger("router.learning.collect")


@dataclass(frozen=True)
class Collected:
    rows: list[OutcomeRow]
    failures: int


def _row(
    question: Question, answer: EdgeAnswer, model: str, mode: ReasoningMode, *, tagged: bool
) -> OutcomeRow:
    summary = answer.summary
    predicted = summary.final_answer if summary.answer_found else None
    return OutcomeRow(
        # Both modes of one question in one table: each row's id names its mode.
        id=f"{question.id}@{mode}" if tagged else question.id,
        prompt=question.prompt,
        source="edge-run",
        task=question.task,
        answer_format=question.answer_format.value,
        edge_model=summary.model or model,
        edge_answer=summary.text,
        edge_score=float(answers_match(predicted, question.gold, question.answer_format)),
        edge_signals=EdgeSignals.from_summary(summary),
        edge_latency_ms=summary.timings.total_ms,
        edge_completion_tokens=summary.completion_tokens,
        reasoning_mode=mode,
        label_source="judge:gold",
        created_at=datetime.now(UTC).isoformat(),
    )


async def _ask(client: EdgeClient, call: EdgeCall, timeout_s: float) -> EdgeAnswer:
    async for item in client.generate(call, timeout_s=timeout_s):
        if isinstance(item, EdgeAnswer):
            return item
    raise EdgeError("the edge stream ended without a summary", code="INTERNAL")


async def collect(
    questions: Sequence[Question],
    *,
    edge_target: str,
    reasoning_modes: Sequence[ReasoningMode] = ("DIRECT",),
    max_tokens: int = 64,
    timeout_s: float = 120.0,
    progress: bool = False,
    on_row: Callable[[OutcomeRow], None] | None = None,
) -> Collected:
    """Asks the edge each question in each of `reasoning_modes`, one at a time (the edge
    serves one generation at a time anyway), and judges its answer. A question the edge
    fails on is logged and left out. `on_row` sees each row as soon as it is judged (a
    long run keeps what it did when interrupted)."""
    client = EdgeClient(edge_target)
    rows: list[OutcomeRow] = []
    failures = 0
    try:
        info = await client.info()
        asks = [(question, mode) for question in questions for mode in reasoning_modes]
        for question, mode in tqdm(asks, desc="edge answers", unit="q", disable=not progress):
            call = EdgeCall(
                messages=[ChatMessage("user", question.prompt)],
                reasoning_mode=mode,
                max_tokens=max_tokens,
                time_budget_ms=int(timeout_s * 1000),
                answer_format=cast(QueryAnswerFormat, question.answer_format.value),
                request_id=question.id,
            )
            try:
                answer = await _ask(client, call, timeout_s)
            except EdgeError as error:
                failures += 1
                log.warning(
                    "collect.edge_failed", question=question.id, mode=mode, error=str(error)
                )
                continue
            row = _row(question, answer, info.model, mode, tagged=len(reasoning_modes) > 1)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    finally:
        await client.aclose()
    return Collected(rows, failures)
