"""The SQLite outcome log: hashing by default, feedback, restarts (schemas:
tests/store/test_migrations.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from router.outcomes import LoggedRequest, OutcomeLog, prompt_sha256
from router.record import DecisionRecord, RouteResult
from sllm.chat import ChatMessage
from sllm.records import BudgetView

QUESTION = "What is the capital of France?"


def _entry(request_id: str) -> LoggedRequest:
    record = DecisionRecord(
        p_edge_ok=0.8,
        pre_generation_threshold=0.5,
        cascade_threshold=0.4,
        budget=BudgetView(
            latency_budget_ms=1000.0,
            latency_budget_source="request",
            cost_ceiling_usd=None,
            tenant_budget_remaining_usd=None,
            est_edge_direct_ms=100.0,
            est_edge_step_by_step_ms=900.0,
            est_cloud_ms=700.0,
            est_cloud_cost_usd=0.0,
        ),
        policy_version="test",
        edge_max_tokens=32,
        reason="CLOUD: a reason.",
    )
    result = RouteResult(
        request_id=request_id,
        text="Paris",
        final_answer="Paris",
        route="CLOUD",
        reasoning_mode=None,
        degraded=False,
        decision=record,
        prompt_tokens=9,
        completion_tokens=1,
        edge=None,
        cloud_text="Paris",
        cloud_model="standin",
    )
    return LoggedRequest(
        query_text=QUESTION,
        messages=[ChatMessage("user", QUESTION)],
        answer_format="FREE_TEXT",
        tenant="t1",
        client_request_id="c1",
        result=result,
    )


async def test_rows_keep_only_a_hash_of_the_prompt_unless_allowed(tmp_path: Path) -> None:
    hashed = OutcomeLog(tmp_path / "a.sqlite3", store_prompts=False, queue_size=10)
    hashed.record(_entry("r1"))
    hashed.flush()
    (row,) = list(hashed.rows())
    assert row["prompt"] is None and row["messages_json"] is None
    assert row["prompt_sha256"] == prompt_sha256(QUESTION)
    assert json.loads(row["decision_json"])["reason"] == "CLOUD: a reason."
    hashed.close()
    stored = OutcomeLog(tmp_path / "b.sqlite3", store_prompts=True, queue_size=10)
    stored.record(_entry("r1"))
    stored.flush()
    assert next(stored.rows())["prompt"] == QUESTION
    stored.close()


async def test_feedback_attaches_to_a_logged_row_and_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    first = OutcomeLog(path, store_prompts=False, queue_size=10)
    first.record(_entry("r1"))
    assert await first.feedback("r1", 1.0, "gold")
    assert not await first.feedback("nope", 1.0, "gold")
    first.close()
    again = OutcomeLog(path, store_prompts=False, queue_size=10)
    assert await again.feedback("r1", 0.0, "user")
    (row,) = list(again.rows())
    assert (row["feedback_score"], row["feedback_source"]) == (0.0, "user")
    again.close()


async def test_rows_committed_in_one_batch_each_wake_their_waiter(tmp_path: Path) -> None:
    log = OutcomeLog(tmp_path / "log.sqlite3", store_prompts=False, queue_size=100)
    written = [log.record(_entry(f"r{n}")) for n in range(20)]
    assert await asyncio.gather(*(log.committed(w, timeout_s=30) for w in written)) == [True] * 20
    assert len(list(log.rows())) == 20
    log.close()
