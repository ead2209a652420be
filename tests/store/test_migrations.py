"""Schema migrations on both backends: a fresh store, a store of the previous version
(SQLite logs from before the schema_version table too), routers starting at once, and a
store from a newer sllm refused."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from router.store import open_store
from router.store.base import SchemaTooNew
from router.store.migrations import LATEST, MIGRATIONS
from router.store.postgres import migrate as migrate_postgres
from router.store.sqlite import migrate as migrate_sqlite

ALL = [m.version for m in MIGRATIONS]
_ROW = (
    "INSERT INTO decisions (request_id, created_at, tenant, client_request_id, prompt_sha256, "
    "answer_format, route, degraded, policy_version, p_edge_ok, answer, final_answer, "
    "cost_usd, total_ms, decision_json) VALUES ('r1', 0, '', '', '', 'FREE_TEXT', 'EDGE', 0, "
    "'v', 0.5, 'Paris', 'Paris', 0, 1, '{}')"
)


def _sqlite_versions(path: Path) -> tuple[list[int], int]:
    with sqlite3.connect(path) as raw:
        applied = [v for (v,) in raw.execute("SELECT version FROM schema_version ORDER BY 1")]
        return applied, raw.execute("PRAGMA user_version").fetchone()[0]


def _postgres_versions(url: str) -> list[int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    return [v for (v,) in rows]


def test_a_fresh_sqlite_log_gets_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    for _ in range(2):
        store = open_store(f"sqlite:///{path}")
        assert store.schema_version == LATEST
        store.close()
    assert _sqlite_versions(path) == (ALL, LATEST)


def test_a_sqlite_log_from_before_the_version_table_is_migrated_keeping_its_rows(
    tmp_path: Path,
) -> None:
    # What sllm wrote before: schema 2, its version only in user_version.
    path = tmp_path / "log.sqlite3"
    migrate_sqlite(path, target=2)
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE schema_version")
        raw.execute(_ROW)
    store = open_store(path)
    assert [row["request_id"] for row in store.rows()] == ["r1"]
    assert store.active_policy() is None
    store.close()
    assert _sqlite_versions(path) == ([3], LATEST)


def test_sqlite_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    _at_once(lambda: open_store(path).close())
    assert _sqlite_versions(path) == (ALL, LATEST)


def test_a_fresh_postgres_store_gets_every_migration_once(postgres_url: str) -> None:
    for _ in range(2):
        store = open_store(postgres_url)
        assert store.schema_version == LATEST
        store.close()
    assert _postgres_versions(postgres_url) == ALL


def test_a_postgres_store_of_the_previous_version_is_migrated_keeping_its_rows(
    postgres_url: str,
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        assert migrate_postgres(connection, "test", target=LATEST - 1) == LATEST - 1
        connection.execute(_ROW)
    store = open_store(postgres_url)
    assert [row["request_id"] for row in store.rows()] == ["r1"]
    assert store.active_policy() is None
    store.close()
    assert _postgres_versions(postgres_url) == ALL


def test_routers_starting_at_once_on_one_postgres_store_migrate_it_once(
    postgres_url: str,
) -> None:
    _at_once(lambda: open_store(postgres_url).close())
    assert _postgres_versions(postgres_url) == ALL


def test_a_store_from_a_newer_sllm_is_refused(tmp_path: Path, postgres_url: str) -> None:
    path = tmp_path / "log.sqlite3"
    open_store(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO schema_version VALUES (99, 0)")
    with pytest.raises(SchemaTooNew, match="schema 99; this sllm knows up to"):
        open_store(path)
    open_store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("INSERT INTO schema_version VALUES (99, 0)")
    with pytest.raises(SchemaTooNew, match="schema 99"):
        open_store(postgres_url)


def _at_once(start: Callable[[], None], count: int = 6) -> None:
    """Runs `start` on `count` threads released together; fails on any error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            start()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
