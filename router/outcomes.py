"""The outcome log: every decision and, later, its outcomes, in SQLite (WAL mode).

Rows are written by one background thread from a bounded queue, so a request never waits
for the disk; when the queue is full the row is dropped, counted and logged rather than
slowing the hot path. Feedback goes through the same queue, so it always lands after the
row it refers to. The schema version is SQLite's `user_version`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from google.protobuf.json_format import MessageToDict

from router import metrics
from router.record import RouteResult
from sllm.chat import ChatMessage

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE decisions (
    request_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,            -- unix seconds
    tenant TEXT NOT NULL,
    client_request_id TEXT NOT NULL,
    prompt_sha256 TEXT NOT NULL,         -- of the query text (the last user message)
    prompt TEXT,                         -- the query text, only when store_prompts
    messages_json TEXT,                  -- all messages, only when store_prompts
    answer_format TEXT NOT NULL,
    route TEXT NOT NULL,
    reasoning_mode TEXT,                 -- the edge's mode; NULL for a cloud answer
    degraded INTEGER NOT NULL,
    policy_version TEXT NOT NULL,
    p_edge_ok REAL NOT NULL,
    p_edge_ok_after REAL,
    edge_summary_json TEXT,              -- the edge's EdgeSummary, when the edge ran
    cloud_text TEXT,
    cloud_model TEXT,
    answer TEXT NOT NULL,
    final_answer TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    total_ms REAL NOT NULL,
    decision_json TEXT NOT NULL          -- the full decision record
);
CREATE INDEX decisions_created_at ON decisions (created_at);
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES decisions (request_id),
    score REAL NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    weight REAL NOT NULL DEFAULT 1.0,    -- inverse of the probability the label was sought
    cloud_text TEXT                      -- the reference answer of a shadow call
);
CREATE INDEX feedback_request_id ON feedback (request_id);
"""
# Schema 2 (shadow exploration) added the feedback's weight and the shadow's answer.
_MIGRATE_1_TO_2 = """
ALTER TABLE feedback ADD COLUMN weight REAL NOT NULL DEFAULT 1.0;
ALTER TABLE feedback ADD COLUMN cloud_text TEXT;
"""
_INSERT = """
INSERT OR REPLACE INTO decisions VALUES (
    :request_id, :created_at, :tenant, :client_request_id, :prompt_sha256, :prompt,
    :messages_json, :answer_format, :route, :reasoning_mode, :degraded, :policy_version,
    :p_edge_ok, :p_edge_ok_after, :edge_summary_json, :cloud_text, :cloud_model, :answer,
    :final_answer, :cost_usd, :total_ms, :decision_json
)
"""

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
    decision = dataclasses.asdict(result.decision)
    decision["difficulty"] = result.decision.difficulty
    return {
        "request_id": result.request_id,
        "created_at": entry.created_at,
        "tenant": entry.tenant,
        "client_request_id": entry.client_request_id,
        "prompt_sha256": prompt_sha256(entry.query_text),
        "prompt": entry.query_text if store_prompts else None,
        "messages_json": (
            json.dumps([dataclasses.asdict(m) for m in entry.messages]) if store_prompts else None
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


def connect(path: Path) -> sqlite3.Connection:
    """Opens (creating or migrating) the log; refuses a schema newer than this code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        connection.close()
        raise RuntimeError(
            f"{path} has outcome-log schema {version}; this sllm knows up to {SCHEMA_VERSION}"
        )
    if version == 0:
        connection.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
    elif version == 1:
        connection.executescript(f"BEGIN; {_MIGRATE_1_TO_2} PRAGMA user_version=2; COMMIT;")
    return connection


_Op = Callable[[sqlite3.Connection], Any]
_STOP = object()


class OutcomeLog:
    def __init__(self, path: Path, *, store_prompts: bool, queue_size: int) -> None:
        self.path = path
        self._store_prompts = store_prompts
        self._connection = connect(path)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="outcome-log", daemon=True)
        self._thread.start()

    def record(self, entry: LoggedRequest) -> None:
        """Queues a routed query for writing; never blocks. The row is built by the writer
        thread too, so serializing it costs the request nothing."""
        store = self._store_prompts
        try:
            self._queue.put_nowait((lambda c: c.execute(_INSERT, _row(entry, store)), None))
        except queue.Full:
            metrics.OUTCOME_ROWS_DROPPED.inc()
            log.warning("outcome_log.row_dropped", request_id=entry.result.request_id)

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

        def attach(c: sqlite3.Connection) -> bool:
            if c.execute("SELECT 1 FROM decisions WHERE request_id = ?", (request_id,)).fetchone():
                c.execute(
                    "INSERT INTO feedback (request_id, score, source, created_at, weight, "
                    "cloud_text) VALUES (?, ?, ?, ?, ?, ?)",
                    (request_id, score, source, time.time(), weight, cloud_text),
                )
                return True
            return False

        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            self._queue.put_nowait((attach, done))
        except queue.Full as full:
            raise OutcomeLogFull("the outcome log is behind; retry the feedback") from full
        return bool(await asyncio.wrap_future(done))

    def rows(self) -> Iterator[sqlite3.Row]:
        """Every logged decision with its latest feedback (score, source, weight, cloud
        text), oldest first."""
        reader = connect(self.path)
        try:
            yield from reader.execute(
                "SELECT d.*, f.score AS feedback_score, f.source AS feedback_source, "
                "f.weight AS feedback_weight, f.cloud_text AS feedback_cloud_text "
                "FROM decisions d LEFT JOIN feedback f ON f.id = "
                "(SELECT MAX(id) FROM feedback WHERE request_id = d.request_id) "
                "ORDER BY d.created_at"
            )
        finally:
            reader.close()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Blocks until everything queued so far is written."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((lambda c: None, done), timeout=timeout_s)
        done.result(timeout=timeout_s)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
        self._connection.close()

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
            if stop:
                return

    def _write(self, batch: list[tuple[_Op, concurrent.futures.Future[Any] | None]]) -> None:
        """One transaction per batch; if it fails, each item alone, so one bad item is lost
        (counted and logged) rather than its whole batch."""
        try:
            self._transaction(batch)
        except sqlite3.Error:
            for item in batch:
                try:
                    self._transaction([item])
                except sqlite3.Error as error:
                    metrics.OUTCOME_ROWS_DROPPED.inc()
                    log.error("outcome_log.write_failed", error=str(error))
                    if item[1] is not None:
                        item[1].set_exception(error)

    def _transaction(self, batch: list[tuple[_Op, concurrent.futures.Future[Any] | None]]) -> None:
        results = []
        self._connection.execute("BEGIN")
        try:
            results = [(done, op(self._connection)) for op, done in batch]
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")
        for done, value in results:
            if done is not None:
                done.set_result(value)
