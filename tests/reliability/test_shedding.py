"""The outcome log sheds rows only beyond what its writer keeps up with: a steady 2,000
rows a second (a quarter of what `sllm bench store` measures SQLite's writer at, here) is
all written; with its store stalled, exactly the rows beyond `outcome_queue_size` are
shed, each counted with its reason, and the requests are not held up by them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bench.store import cloud_answered
from router.outcomes import OutcomeLog, OutcomeLogFull, Written
from router.store.base import StoreBusy, Writes

RATE = 2_000  # rows a second
SECONDS = 2.0


def _shed() -> float:
    value = REGISTRY.get_sample_value(
        "sllm_router_outcome_rows_dropped_total", {"reason": "queue_full"}
    )
    return value or 0.0


def _row_count(log: OutcomeLog) -> int:
    return sum(1 for _ in log.rows())


async def test_a_steady_rate_the_writer_keeps_up_with_sheds_nothing(tmp_path: Path) -> None:
    # A queue of a quarter second's rows: a writer that fell behind would overflow it.
    log = OutcomeLog(tmp_path / "log.sqlite3", store_prompts=False, queue_size=RATE // 4)
    shed_before = _shed()
    written: list[Written] = []
    started = time.monotonic()
    for n in range(int(RATE * SECONDS)):
        # Paced by the clock, 20 rows at a time: asyncio sleeps no finer than a millisecond.
        if n % 20 == 0:
            await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))
        written.append(log.record(cloud_answered(f"r{n}")))
    await asyncio.to_thread(log.flush)
    assert [w.exception() for w in written if w.exception() is not None] == []
    assert _shed() == shed_before
    assert _row_count(log) == len(written)
    log.close()


@contextmanager
def _stalled(
    log: OutcomeLog, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The store's transactions wait until `release` is set (a stalled disk or database),
    those that must not wait find it busy; `entered` is set when the writer thread is
    stalled in one."""
    entered, release = threading.Event(), threading.Event()
    transaction = log.store.transaction

    @contextmanager
    def stalled(*, wait: bool) -> Iterator[Writes]:
        if not wait:
            # As while another process writes: the loop hands its rows to the writer thread.
            raise StoreBusy(f"{log.store.where}: stalled")
        entered.set()
        release.wait(timeout=30)
        with transaction() as writes:
            yield writes

    def stalled_transaction(*, wait: bool = True) -> AbstractContextManager[Writes]:
        return stalled(wait=wait)

    monkeypatch.setattr(log.store, "transaction", stalled_transaction)
    try:
        yield entered, release
    finally:
        release.set()


async def test_a_stalled_store_sheds_exactly_the_rows_beyond_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_size, beyond = 50, 7
    log = OutcomeLog(tmp_path / "log.sqlite3", store_prompts=False, queue_size=queue_size)
    shed_before = _shed()
    with _stalled(log, monkeypatch) as (entered, release):
        # The writer takes one row and stalls on it; then the queue fills.
        first = log.record(cloud_answered("r0"))
        assert await asyncio.to_thread(entered.wait, 10)
        written = [log.record(cloud_answered(f"r{n}")) for n in range(1, queue_size + beyond + 1)]
        # The end of the loop's turn, when its rows are handed over.
        await asyncio.sleep(0)
        shed = [w for w in written if w.done() and isinstance(w.exception(), OutcomeLogFull)]
        assert len(shed) == beyond and _shed() - shed_before == beyond
        # A request whose row was shed is answered at once, not after the wait.
        assert not await log.committed(shed[0], timeout_s=30)
        release.set()
    await asyncio.to_thread(log.flush)
    assert first.result(timeout=10) is None
    assert _row_count(log) == 1 + queue_size
    log.close()


async def test_an_answer_waits_for_its_row_no_longer_than_the_commit_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = OutcomeLog(tmp_path / "log.sqlite3", store_prompts=False, queue_size=10)
    acks = "sllm_router_outcome_acks_before_commit_total"
    before = REGISTRY.get_sample_value(acks) or 0.0
    with _stalled(log, monkeypatch) as (entered, release):
        written = log.record(cloud_answered("r0"))
        assert await asyncio.to_thread(entered.wait, 10)
        assert not await log.committed(written, timeout_s=0.05)
        assert (REGISTRY.get_sample_value(acks) or 0.0) - before == 1
        release.set()
        # Still waited for after a timeout: the row's commit wakes its next waiter.
        assert await log.committed(written, timeout_s=30)
    log.close()
