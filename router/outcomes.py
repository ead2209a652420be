"""The outcome log: every decision and, later, its outcomes, in the outcome store
(router/store: SQLite, or PostgreSQL for a fleet).

The router acknowledges a request once its row is committed (`committed`), which is what
makes an answered request's row survive a crash of the router (the promise:
docs/reliability.md). Where a commit is local and cheap (SQLite: `local_writes`), the rows
recorded during one turn of the event loop are written on the loop, in one transaction at
the end of that turn: a row then costs its few tens of microseconds of work, not a
hand-off to a thread and back, which cost more than the work. The loop never waits for
the store, though: while another writer holds it (the writer thread, or another process)
or rows handed over earlier are still unwritten, the batch goes to the writer thread,
which waits for the store; so does every batch where a commit is a round trip
(PostgreSQL). The thread takes items from a bounded queue, in batches (one transaction
for every item waiting), and does the store's upkeep (`checkpoint`). When the queue is
full the row is dropped, counted and logged rather than queued without bound. Feedback
goes the same way as rows, in order, so it always lands after the row it refers to.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from google.protobuf.json_format import MessageToDict

from router import metrics
from router.plain import as_dict
from router.record import RouteResult
from router.store import open_store
from router.store.base import FeedbackRow, StoreBusy, Writes
from sllm.chat import ChatMessage

log = structlog.get_logger("router.outcomes")


class OutcomeLogFull(Exception):
    """The writer is behind; the operation was not queued."""


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """A routed query as the log keeps it."""

    query_text: str
    messages: Sequence[ChatMessage]
    answer_format: str
    tenant: str
    client_request_id: str
    result: RouteResult
    created_at: float = dataclasses.field(default_factory=time.time)


def prompt_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _row(entry: LoggedRequest, store_prompts: bool) -> dict[str, Any]:
    result = entry.result
    decision = as_dict(result.decision)
    decision["difficulty"] = result.decision.difficulty
    return {
        "request_id": result.request_id,
        "created_at": entry.created_at,
        "tenant": entry.tenant,
        "client_request_id": entry.client_request_id,
        "prompt_sha256": prompt_sha256(entry.query_text),
        "prompt": entry.query_text if store_prompts else None,
        "messages_json": (
            json.dumps([as_dict(m) for m in entry.messages]) if store_prompts else None
        ),
        "answer_format": entry.answer_format,
        "route": result.route,
        "reasoning_mode": result.reasoning_mode,
        "degraded": int(result.degraded),
        "policy_version": result.decision.policy_version,
        "p_edge_ok": result.decision.p_edge_ok,
        "p_edge_ok_after": result.decision.p_edge_ok_after,
        "edge_summary_json": (
            json.dumps(MessageToDict(result.edge.summary)) if result.edge is not None else None
        ),
        "cloud_text": result.cloud_text,
        "cloud_model": result.cloud_model,
        "answer": result.text,
        "final_answer": result.final_answer,
        "cost_usd": result.decision.cost_usd,
        "total_ms": result.decision.timings.total_ms,
        "decision_json": json.dumps(decision),
    }


_Op = Callable[[Writes], Any]


@dataclass(frozen=True, slots=True, eq=False)
class _Item:
    op: _Op
    # Settled with the op's result or error; nobody may be waiting any more.
    done: concurrent.futures.Future[Any]
    # A decision's request id: losing its row is counted and logged.
    row_of: str | None = None


_STOP = object()
# Asks the writer thread for the store's upkeep.
_CHECKPOINT = object()
# Commits made on the loop between checkpoints. SQLite's own automatic checkpoint comes
# every 1,000 pages of log; a commit of a few rows adds about 4 (decisions and its indexes).
CHECKPOINT_EVERY = 250
# What the loop committed since the last checkpoint waits at most about this long, so an
# idle router's log is checkpointed (and synced) too.
CHECKPOINT_IDLE_S = 1.0
# Done when a recorded row is committed.
Written = concurrent.futures.Future[None]


def _settle(
    done: concurrent.futures.Future[Any], value: Any = None, error: Exception | None = None
) -> None:
    """A caller that left (a cancelled RPC) cancelled its future: the write stands, and
    the writer must not fail on setting a result nobody waits for."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is None:
            done.set_result(value)
        else:
            done.set_exception(error)


def _wake_all(waiters: Sequence[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        # Done already: timed out, or its caller left.
        if not waiter.done():
            waiter.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class OutcomeLog:
    def __init__(self, where: str | Path, *, store_prompts: bool, queue_size: int) -> None:
        """`where`: the store's URL, or a SQLite file's path."""
        self.store = open_store(where)
        self._store_prompts = store_prompts
        self._on_loop = self.store.local_writes
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        # Items handed to the writer thread and not written yet. While there are any, the
        # loop hands its batches over too, so that nothing overtakes them: feedback must
        # land after its row.
        self._unwritten = 0
        self._counting = threading.Lock()
        # Each running loop's batch, written at the end of the loop's current turn.
        self._batches: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._loop_commits = 0
        self._checkpoint_asked_at = 0
        self._checkpointed_at = 0
        # `committed` callers whose rows were settled, woken together once a batch: on
        # their loop's thread directly, from the writer thread with one wake-up of each
        # loop (a write to its self-pipe) per batch, not one per row as
        # `asyncio.wrap_future` makes.
        self._woken: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]
        self._woken = collections.deque()
        self._thread = threading.Thread(target=self._run, name="outcome-log", daemon=True)
        self._thread.start()

    def record(self, entry: LoggedRequest) -> Written:
        """Submits a routed query for writing; never blocks. The future is done when the
        row is committed, or holds why it was lost (`OutcomeLogFull`, the write's error).
        The row is built with its batch, after the request's own work in the loop's turn,
        or on the writer thread."""
        store = self._store_prompts
        written: Written = concurrent.futures.Future()
        self._submit(
            _Item(
                lambda w: w.insert_decision(_row(entry, store)),
                written,
                row_of=entry.result.request_id,
            )
        )
        return written

    async def committed(self, written: Written, *, timeout_s: float) -> bool:
        """Waits until a recorded row is committed, at most `timeout_s`: the router answers
        a request after this, so an answered request's row outlives a crash of the router.
        False when the row is not committed yet (still queued: counted, since a crash now
        would lose it) or was lost (counted where it was lost)."""
        if not written.done() and timeout_s > 0:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            written.add_done_callback(lambda _: self._woken.append((loop, waiter)))
            # Settled meanwhile: its waiter may have missed the batch's wake-up.
            if not written.done():
                expiry = loop.call_later(timeout_s, _wake_all, (waiter,))
                try:
                    await waiter
                finally:
                    expiry.cancel()
        if not written.done():
            metrics.OUTCOME_ACKS_BEFORE_COMMIT.inc()
            return False
        return written.exception() is None

    async def feedback(
        self,
        request_id: str,
        score: float,
        source: str,
        *,
        weight: float = 1.0,
        cloud_text: str | None = None,
    ) -> bool:
        """Attaches an outcome to a logged request; False when no such request was logged.
        A shadow call's label also keeps its weight and the cloud's answer. Raises
        OutcomeLogFull when the log is too far behind to take it."""

        row = FeedbackRow(request_id, score, source, time.time(), weight, cloud_text)

        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Item(lambda w: w.add_feedback(row), done))
        return bool(await asyncio.wrap_future(done))

    def rows(self) -> Iterator[Mapping[str, Any]]:
        """Every logged decision with its latest feedback (score, source, weight, cloud
        text), oldest first."""
        return self.store.rows()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Blocks until everything submitted so far is written."""
        self._hand_off_batches()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if not self._enqueue(_Item(lambda w: None, done), timeout_s=timeout_s):
            raise queue.Full
        done.result(timeout=timeout_s)

    def close(self) -> None:
        self._hand_off_batches()
        self._queue.put(_STOP)
        self._thread.join()
        self.store.close()

    def _submit(self, item: _Item) -> None:
        loop = _running_loop() if self._on_loop else None
        if loop is None:
            # No loop to write on (the command line, a thread), or a store whose commit
            # is a round trip.
            self._hand_off((item,))
            return
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = []
            loop.call_soon(self._flush, loop)
        batch.append(item)

    def _hand_off_batches(self) -> None:
        """Every loop's batch, to the writer thread now: a caller about to block (`flush`,
        `close`, perhaps on the loop's own thread) would otherwise wait for batches that
        are written only after it returns, or after the store is closed."""
        for loop in list(self._batches):
            self._hand_off(self._batches.pop(loop, ()))

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """The end of a loop's turn: its batch in one transaction, on the loop, unless
        that would wait or overtake what the writer thread has still to write."""
        batch = self._batches.pop(loop, None)
        if batch is None:
            return
        if self._unwritten == 0:
            left = self._write(batch, wait=False)
            if len(left) < len(batch):
                self._committed_on_loop()
            self._wake(loop)
            batch = left
        self._hand_off(batch)

    def _committed_on_loop(self) -> None:
        self._loop_commits += 1
        if self._loop_commits - self._checkpoint_asked_at >= CHECKPOINT_EVERY:
            self._checkpoint_asked_at = self._loop_commits
            # A full queue: the thread is busy writing, and checkpoints when idle.
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_CHECKPOINT)

    def _enqueue(self, item: _Item, *, timeout_s: float | None = None) -> bool:
        """Hands an item to the writer thread; False when the queue is full (and stayed
        full for `timeout_s`)."""
        with self._counting:
            self._unwritten += 1
        try:
            self._queue.put(item, block=timeout_s is not None, timeout=timeout_s)
        except queue.Full:
            with self._counting:
                self._unwritten -= 1
            return False
        return True

    def _hand_off(self, items: Sequence[_Item]) -> None:
        for item in items:
            if self._enqueue(item):
                continue
            if item.row_of is None:
                _settle(item.done, error=OutcomeLogFull("the outcome log is behind; retry"))
                continue
            metrics.OUTCOME_ROWS_DROPPED.labels("queue_full").inc()
            log.warning("outcome_log.row_dropped", request_id=item.row_of)
            _settle(item.done, error=OutcomeLogFull("the outcome log's queue is full"))

    def _run(self) -> None:
        idle_s = CHECKPOINT_IDLE_S if self._on_loop else None
        while True:
            try:
                batch = [self._queue.get(timeout=idle_s)]
            except queue.Empty:
                if self._loop_commits != self._checkpointed_at:
                    self._checkpoint()
                continue
            while len(batch) < 256:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [item for item in batch if isinstance(item, _Item)]
            if items:
                self._write(items, wait=True)
                with self._counting:
                    self._unwritten -= len(items)
                self._wake(None)
            if _CHECKPOINT in batch:
                self._checkpoint()
            if _STOP in batch:
                return

    def _checkpoint(self) -> None:
        self._checkpointed_at = self._loop_commits
        try:
            self.store.checkpoint()
        except Exception as error:
            # The rows are committed; the log only grows until a checkpoint succeeds.
            log.warning("outcome_log.checkpoint_failed", error=repr(error))

    def _wake(self, here: asyncio.AbstractEventLoop | None) -> None:
        """Wakes the waiters of settled rows: those of `here`, the loop this runs on, at
        once."""
        waiters: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        # The loop's thread and the writer's both take from it.
        with contextlib.suppress(IndexError):
            while True:
                loop, waiter = self._woken.popleft()
                waiters.setdefault(loop, []).append(waiter)
        for loop, woken in waiters.items():
            if loop is here:
                _wake_all(woken)
                continue
            # A loop closed since its caller waited has nobody left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake_all, woken)

    def _write(self, batch: list[_Item], *, wait: bool) -> list[_Item]:
        """One transaction per batch; if it fails, each item alone. Returns the items left
        unwritten, in order, because another writer held the store (`wait=False`)."""
        try:
            self._transaction(batch, wait=wait)
        except StoreBusy:
            return batch
        except Exception:
            return self._one_by_one(batch, wait=wait)
        return []

    def _one_by_one(self, batch: list[_Item], *, wait: bool) -> list[_Item]:
        """One bad item is lost (counted and logged) rather than its whole batch. Any
        exception, not only the store's: text the driver cannot encode, or a row that
        cannot be built, must cost its own item, never the writer, which every later row
        waits for."""
        for n, item in enumerate(batch):
            try:
                self._transaction([item], wait=wait)
            except StoreBusy:
                return batch[n:]
            except Exception as error:
                metrics.OUTCOME_ROWS_DROPPED.labels("write_failed").inc()
                log.error("outcome_log.write_failed", error=repr(error))
                _settle(item.done, error=error)
        return []

    def _transaction(self, batch: list[_Item], *, wait: bool) -> None:
        with self.store.transaction(wait=wait) as writes:
            results = [(item.done, item.op(writes)) for item in batch]
        for done, value in results:
            _settle(done, value)
