"""The outcome store in one SQLite file (WAL): a single box, one router."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

from router.spend import Spend, TenantSpend
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


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    _use_wal(connection)
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


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
        connection.execute("BEGIN IMMEDIATE")
        try:
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
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return version
    finally:
        connection.close()


class SqliteStore(SqlStore):
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        with self._errors():
            self.schema_version = migrate(path)
            self._writer = _connect(path)

    @contextmanager
    def _transaction(self, *, writer: bool) -> Iterator[Run]:
        # Everything but the writer thread opens its own connection: cheap for a file.
        connection = self._writer if writer else _connect(self.path)
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection.execute
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            if not writer:
                connection.close()

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
