"""The outcome store in PostgreSQL: one store for a fleet of routers.

Each router keeps two connections: the writer thread's, which sends a batch's rows in
pipeline mode inside one transaction (one round trip per batch, not per row), and one for
everything else (policies), each reopened when broken. Tenant spend has its own
(postgres_spend.py).
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from router.spend import Spend
from router.store.base import StoreBusy
from router.store.common import ROWS, Run, SqlStore
from router.store.migrations import LATEST, SCHEMA_VERSION_TABLE, pending
from router.store.postgres_spend import PostgresSpend

# One migrator at a time, whatever the number of routers starting together.
_MIGRATION_LOCK = 0x736C6C6D_00000001


@functools.cache
def _pg(statement: str) -> str:
    """common.py's `:name` parameters in psycopg's `%(name)s`."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement)


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable URL)"
    host = info.get("host", "")
    port = f":{info['port']}" if "port" in info else ""
    user = f"{info['user']}@" if "user" in info else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname', '')}"


def migrate(connection: psycopg.Connection[Any], where: str, *, target: int = LATEST) -> int:
    """Brings the database to `target`; returns the version it is at. Routers starting
    at once wait on an advisory lock, and the later ones find the work done."""
    connection.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
    try:
        connection.execute(SCHEMA_VERSION_TABLE)
        row = connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        version = int(row.fetchone()[0])  # type: ignore[index]
        for migration in pending(version, where, target=target):
            with connection.transaction():
                for statement in migration.script("postgres"):
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                    (migration.version, time.time()),
                )
            version = migration.version
        return version
    finally:
        connection.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))


class PostgresStore(SqlStore):
    driver_errors = (psycopg.Error,)
    # A commit is a round trip to the server: never on the router's event loop.
    local_writes = False

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = redacted(url)
        self._connections: dict[bool, psycopg.Connection[Any]] = {}
        self._locks = {True: threading.Lock(), False: threading.Lock()}
        with self._errors():
            self.schema_version = migrate(self._connection(writer=False), self.where)

    def _connection(self, *, writer: bool) -> psycopg.Connection[Any]:
        connection = self._connections.get(writer)
        if connection is None or connection.closed or connection.broken:
            connection = psycopg.connect(self.url, autocommit=True)
            self._connections[writer] = connection
        return connection

    @contextmanager
    def _transaction(self, *, writer: bool, wait: bool = True) -> Iterator[Run]:
        lock = self._locks[writer]
        if not lock.acquire(blocking=wait):
            raise StoreBusy(f"{self.where}: this router's other write is under way")
        try:
            connection = self._connection(writer=writer)

            def run(statement: str, params: Mapping[str, Any]) -> psycopg.Cursor[Any]:
                return connection.execute(_pg(statement), params)

            with connection.pipeline(), connection.transaction():
                yield run
        finally:
            lock.release()

    def _lock_policies(self, run: Run) -> None:
        run("LOCK TABLE policies IN SHARE ROW EXCLUSIVE MODE", {})

    def rows(self) -> Iterator[Mapping[str, Any]]:
        # A server-side cursor: a large log streams instead of filling memory.
        with (
            self._errors(),
            psycopg.connect(self.url) as connection,
            connection.cursor(name="sllm_rows", row_factory=dict_row) as cursor,
        ):
            cursor.execute(ROWS)
            yield from cursor

    def checkpoint(self) -> None:
        """The server checkpoints its own log."""

    def tenant_spend(self, *, budget_usd: float | None, window_s: float) -> Spend:
        return PostgresSpend(self.url, budget_usd=budget_usd, window_s=window_s)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
