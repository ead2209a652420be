"""The outcome log: every decision and, later, its outcomes, in the outcome store
(router/store: SQLite, or PostgreSQL for a fleet).

Rows are written by one background thread from a bounded queue, in batches (one
transaction for every row waiting), so the store's work stays off the event loop; the
router acknowledges a request once its row is committed (`committed`), which is what makes
an answered request's row survive a crash of the router (the promise: docs/reliability.md).
When the queue is full the row is dropped, counted and logged rather than queued without
bound. Feedback goes through the same queue, so it always lands after the row it refers to.
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
from router.store.base import FeedbackRow, Writes
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
_STOP = object()
# Done when a recorded row is committed.
Written = concurrent.futures.Future[None]


def _settle(
    done: concurrent.futures.Future[Any] | None, value: Any = None, error: Exception | None = None
) -> None:
    """A caller that left (a cancelled RPC) cancelled its future: the write stands, and
    the writer thread must not die on setting a result nobody waits for."""
    if done is None:
        return
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


class OutcomeLog:
    def __init__(self, where: str | Path, *, store_prompts: bool, queue_size: int) -> None:
        """`where`: the store's URL, or a SQLite file's path."""
        self.store = open_store(where)
        self._store_prompts = store_prompts
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        # `committed` callers whose rows the writer settled, woken together once a batch
        # is written: one wake-up of an event loop (a write to its self-pipe) per batch,
        # not one per row as `asyncio.wrap_future` makes.
        self._woken: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]
        self._woken = collections.deque()
        self._thread = threading.Thread(target=self._run, name="outcome-log", daemon=True)
        self._thread.start()

    def record(self, entry: LoggedRequest) -> Written:
        """Queues a routed query for writing; never blocks. The future is done when the row
        is committed, or holds why it was lost (`OutcomeLogFull`, the write's error). The row is
        built by the writer thread too, so serializing it costs the request nothing."""
        store = self._store_prompts
        written: Written = concurrent.futures.Future()
        try:
            self._queue.put_nowait((lambda w: w.insert_decision(_row(entry, store)), written))
        except queue.Full:
            metrics.OUTCOME_ROWS_DROPPED.labels("queue_full").inc()
            log.warning("outcome_log.row_dropped", request_id=entry.result.request_id)
            written.set_exception(OutcomeLogFull("the outcome log's queue is full"))
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
        A shadow call's label also keeps its weight and the cloud's answer."""

        row = FeedbackRow(request_id, score, source, time.time(), weight, cloud_text)

        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            self._queue.put_nowait((lambda w: w.add_feedback(row), done))
        except queue.Full as full:
            raise OutcomeLogFull("the outcome log is behind; retry the feedback") from full
        return bool(await asyncio.wrap_future(done))

    def rows(self) -> Iterator[Mapping[str, Any]]:
        """Every logged decision with its latest feedback (score, source, weight, cloud
        text), oldest first."""
        return self.store.rows()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Blocks until everything queued so far is written."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((lambda c: None, done), timeout=timeout_s)
        done.result(timeout=timeout_s)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        self.store.close()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 256:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            self._write([item for item in batch if item is not _STOP])
            self._wake()
            if stop:
                return

    def _wake(self) -> None:
        waiters: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        while self._woken:
            loop, waiter = self._woken.popleft()
            waiters.setdefault(loop, []).append(waiter)
        for loop, woken in waiters.items():
            # A loop closed since its caller waited has nobody left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake_all, woken)

    def _write(self, batch: list[tuple[_Op, concurrent.futures.Future[Any] | None]]) -> None:
        """One transaction per batch; if it fails, each item alone, so one bad item is lost
        (counted and logged) rather than its whole batch. Any exception, not only the
        store's: text the driver cannot encode, or a row that cannot be built, must cost
        its own item, never this thread, which every later row waits for."""
        try:
            self._transaction(batch)
        except Exception:
            for item in batch:
                try:
                    self._transaction([item])
                except Exception as error:
                    metrics.OUTCOME_ROWS_DROPPED.labels("write_failed").inc()
                    log.error("outcome_log.write_failed", error=repr(error))
                    _settle(item[1], error=error)

    def _transaction(self, batch: list[tuple[_Op, concurrent.futures.Future[Any] | None]]) -> None:
        with self.store.transaction() as writes:
            results = [(done, op(writes)) for op, done in batch]
        for done, value in results:
            _settle(done, value)
