"""The outcome store in one SQLite file (WAL): a single box, one router."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

from router.spend import Spend, TenantSpend
from router.store.base import StoreBusy
from router.store.common import ROWS, Run, SqlStore
from router.store.migrations import LATEST, SCHEMA_VERSION_TABLE, pending


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


# Switching a new file to WAL takes an exclusive lock, and SQLite answers "database is
# locked" at once, without its busy handler, while another process opening the same new
# file holds it: routers starting together would fail. Retried for as long as the busy
# timeout waits for any other lock.
@retry(
    retry=retry_if_exception(_locked),
    wait=wait_random_exponential(multiplier=0.001, max=0.05),
    stop=stop_after_delay(5.0),
    reraise=True,
)
def _use_wal(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=WAL")


def _connect(path: Path, *, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    _use_wal(connection)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return connection


@contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[Run]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection.execute
        connection.execute("COMMIT")
    except BaseException:
        # A failed COMMIT leaves the transaction open, and every later BEGIN would fail.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _as_dict(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _version(connection: sqlite3.Connection) -> int:
    """The schema_version table's, or, in a log made before it, SQLite's user_version."""
    if connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone():
        return int(
            connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        )
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def migrate(path: Path, *, target: int = LATEST) -> int:
    """Brings the file to `target` (creating it); returns the version it is at. Two
    processes starting at once: the write lock (BEGIN IMMEDIATE) lets one migrate and the
    other find it done."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = _connect(path)
    try:
        with _immediate(connection):
            version = _version(connection)
            todo = pending(version, str(path), target=target)
            if todo:
                connection.execute(SCHEMA_VERSION_TABLE)
            for migration in todo:
                for statement in migration.script("sqlite"):
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (migration.version, time.time()),
                )
                connection.execute(f"PRAGMA user_version = {migration.version}")
                version = migration.version
        return version
    finally:
        connection.close()


class SqliteStore(SqlStore):
    driver_errors = (sqlite3.Error,)
    local_writes = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        # The process's writers take turns here first, so a writer that must not wait
        # learns that another is under way without a failed attempt on the file's lock.
        self._writing = threading.Lock()
        with self._errors():
            self.schema_version = migrate(path)
            # The writer thread's: it waits for other processes' writes, and its commits
            # may checkpoint (SQLite's automatic checkpoint), both off the event loop.
            self._writer = _connect(path)
            # For transactions that must not wait (on the event loop): no busy wait, and
            # no automatic checkpoint, which would fsync inside some commit; `checkpoint`
            # does that work from the writer thread.
            self._nowait = _connect(path, busy_timeout_ms=0)
            self._nowait.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = _connect(path)

    @contextmanager
    def _transaction(self, *, writer: bool, wait: bool = True) -> Iterator[Run]:
        if not writer:
            # Everything but the writers opens its own connection: cheap for a file.
            connection = _connect(self.path)
            try:
                with _immediate(connection) as run:
                    yield run
            finally:
                connection.close()
            return
        if not self._writing.acquire(blocking=wait):
            raise StoreBusy(f"{self.where}: this router's other write is under way")
        try:
            with _immediate(self._writer if wait else self._nowait) as run:
                yield run
        except sqlite3.OperationalError as error:
            if wait or not _locked(error):
                raise
            raise StoreBusy(f"{self.where}: another process is writing") from error
        finally:
            self._writing.release()

    def checkpoint(self) -> None:
        with self._errors():
            # Most of the work (copying the log into the file, syncing both: tens of ms),
            # while the writers go on.
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            # Then what they committed meanwhile, holding them off: SQLite starts its log
            # again from the beginning only after a checkpoint that copied all of it, so
            # with commits landing during every checkpoint the log would grow for as long
            # as the load lasted.
            with self._writing:
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _lock_policies(self, run: Run) -> None:
        """BEGIN IMMEDIATE took the file's write lock already."""

    def rows(self) -> Iterator[Mapping[str, Any]]:
        with self._errors():
            reader = _connect(self.path)
            reader.row_factory = _as_dict
            try:
                yield from reader.execute(ROWS)
            finally:
                reader.close()

    def tenant_spend(self, *, budget_usd: float | None, window_s: float) -> Spend:
        return TenantSpend(budget_usd=budget_usd, window_s=window_s)

    def close(self) -> None:
        self._writer.close()
        self._nowait.close()
        self._checkpointer.close()
