"""The outcome store: decisions, feedback, published policies and, for a fleet, tenant
spend. SQLite (one file, one router) or PostgreSQL (one store for a fleet), chosen by
`router.outcome_store`; the router, the exporter and the learner see only the interface
in base.py. Docs: docs/outcome-store.md."""

from __future__ import annotations

from pathlib import Path

from router.store.base import OutcomeStore, StoreError
from sllm.settings import RouterSettings

__all__ = ["OutcomeStore", "StoreError", "is_store_url", "open_store", "shown", "store_url"]

SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")


def store_url(settings: RouterSettings) -> str:
    """`router.outcome_store`, or when unset the SQLite file `router.outcome_db`."""
    return settings.outcome_store or f"{SQLITE}{settings.outcome_db}"


def is_store_url(text: str) -> bool:
    return text.startswith((SQLITE, *POSTGRES))


def shown(where: str) -> str:
    """A store's URL as a message or a file may show it: without its password."""
    if where.startswith(POSTGRES):
        from router.store.postgres import redacted

        return redacted(where)
    return where


def open_store(where: str | Path) -> OutcomeStore:
    """Opens (creating and migrating) the store at a URL, or a SQLite file's path."""
    if isinstance(where, Path):
        from router.store.sqlite import SqliteStore

        return SqliteStore(where)
    if where.startswith(SQLITE):
        from router.store.sqlite import SqliteStore

        return SqliteStore(Path(where.removeprefix(SQLITE)))
    if where.startswith(POSTGRES):
        # psycopg loads only for a fleet's store.
        from router.store.postgres import PostgresStore

        return PostgresStore(where)
    raise StoreError(
        f"outcome store {where!r}: expected sqlite:///PATH or postgresql://USER@HOST/DB"
    )
