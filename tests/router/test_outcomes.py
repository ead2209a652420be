"""The SQLite outcome log: hashing by default, feedback, restarts (schemas:
tests/store/test_migrations.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from router import outcomes
from router.outcomes import LoggedRequest, OutcomeLog, prompt_sha256
from router.record import DecisionRecord, RouteResult
from router.store.base import Writes
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


def _wal_pages(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size // 4096 if wal.exists() else 0


async def test_a_turns_rows_are_committed_on_the_loop_in_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.sqlite3"
    log = OutcomeLog(path, store_prompts=False, queue_size=10)
    transactions: list[tuple[str, bool]] = []
    transaction = log.store.transaction

    def watched(*, wait: bool = True) -> AbstractContextManager[Writes]:
        transactions.append((threading.current_thread().name, wait))
        return transaction(wait=wait)

    monkeypatch.setattr(log.store, "transaction", watched)
    written = [log.record(_entry(f"r{n}")) for n in range(5)]
    assert await asyncio.gather(*(log.committed(w, timeout_s=5) for w in written)) == [True] * 5
    assert transactions == [(threading.current_thread().name, False)]
    # Committed: another process sees the rows.
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM decisions").fetchone() == (5,)
    log.close()


def _log_and_another_writer(path: Path) -> tuple[OutcomeLog, sqlite3.Connection]:
    """A log, and another process's connection holding the file's write lock."""
    log = OutcomeLog(path, store_prompts=False, queue_size=10)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return log, other


async def test_a_store_locked_by_another_process_does_not_block_the_loop(tmp_path: Path) -> None:
    log, other = _log_and_another_writer(tmp_path / "log.sqlite3")
    started = time.monotonic()
    written = [log.record(_entry(f"r{n}")) for n in range(3)]
    # The loop keeps turning while the rows wait for the store...
    ticks = 0
    while time.monotonic() - started < 0.3:
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks >= 10
    assert not await log.committed(written[0], timeout_s=0.05)
    # ... and they land once the other writer is done, with their feedback after them.
    feedback = asyncio.create_task(log.feedback("r2", 1.0, "gold"))
    await asyncio.sleep(0.05)
    other.execute("COMMIT")
    assert await asyncio.gather(*(log.committed(w, timeout_s=10) for w in written)) == [True] * 3
    assert await feedback
    other.close()
    rows = {row["request_id"]: row for row in log.rows()}
    assert sorted(rows) == ["r0", "r1", "r2"] and rows["r2"]["feedback_score"] == 1.0
    log.close()


async def test_feedback_lands_after_its_row_handed_to_the_writer_thread(tmp_path: Path) -> None:
    log, other = _log_and_another_writer(tmp_path / "log.sqlite3")
    written = log.record(_entry("r1"))
    # The row's turn has ended: the row is with the writer thread, waiting for the store.
    await asyncio.sleep(0.05)
    other.execute("COMMIT")
    # The store is free again, but the row may not be written yet: its feedback must not
    # overtake it on the loop.
    assert await log.feedback("r1", 0.0, "user")
    assert await log.committed(written, timeout_s=10)
    other.close()
    log.close()


async def test_the_loop_leaves_checkpoints_to_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite checkpoints every 1,000 pages of log by default, inside some commit."""
    monkeypatch.setattr(outcomes, "CHECKPOINT_IDLE_S", 0.05)
    path = tmp_path / "log.sqlite3"
    log = OutcomeLog(path, store_prompts=False, queue_size=10)
    checkpoint = log.store.checkpoint
    checkpoints: list[str] = []

    def watched(*, through: bool) -> None:
        checkpoints.append(threading.current_thread().name)
        if through:
            checkpoint()

    monkeypatch.setattr(log.store, "checkpoint", lambda: watched(through=False))
    # Rows committed one a turn: without the thread's checkpoints the log only grows.
    for n in range(400):
        assert await log.committed(log.record(_entry(f"r{n}")), timeout_s=5)
    grown = _wal_pages(path)
    assert grown > 1_000
    assert set(checkpoints) == {"outcome-log"}
    monkeypatch.setattr(log.store, "checkpoint", lambda: watched(through=True))
    for n in range(1_000):
        assert await log.committed(log.record(_entry(f"s{n}")), timeout_s=5)
    # About 3,400 pages more without them; with them the log starts again from its
    # beginning (the file keeps its size).
    assert _wal_pages(path) < grown + 1_000
    assert set(checkpoints) == {"outcome-log"}
    # An idle router's last commits are checkpointed too.
    asked = len(checkpoints)
    log.record(_entry("last"))
    await asyncio.sleep(0.5)
    assert len(checkpoints) > asked
    log.close()
