"""The outcome store's interface: what the router, the exporter and the learner use,
whichever backend keeps the rows (sqlite.py for a single box, postgres.py for a fleet)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from router.spend import Spend


class StoreError(Exception):
    """A backend failed (connection, constraint, disk); the message says which store."""


class StoreBusy(StoreError):
    """Another writer holds the store, and the transaction was not to wait: nothing of
    it was written."""


class SchemaTooNew(StoreError):
    """The store was migrated by a newer sllm; this one would misread it."""


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    request_id: str
    score: float
    source: str
    created_at: float
    # Inverse of the probability the label was sought (shadow exploration).
    weight: float = 1.0
    # The reference answer of a shadow call.
    cloud_text: str | None = None


@dataclass(frozen=True, slots=True)
class PublishedPolicy:
    """A policy directory kept in the store, for every router of a fleet to load."""

    id: int
    version: str
    created_at: float
    active: bool


class Writes(Protocol):
    """The writes of one transaction."""

    def insert_decision(self, row: Mapping[str, Any]) -> None: ...

    def add_feedback(self, feedback: FeedbackRow) -> bool:
        """False when no decision with that request id was logged."""
        ...


class OutcomeStore(Protocol):
    # The store as messages name it: a path, or a URL without its password.
    where: str
    schema_version: int
    # Commits that touch only a local file (tens of microseconds, no network): cheap
    # enough for the router to make on its event loop with `transaction(wait=False)`,
    # leaving `checkpoint` to a thread. False where a commit is a round trip.
    local_writes: bool

    def transaction(self, *, wait: bool = True) -> AbstractContextManager[Writes]:
        """All or nothing; raises StoreError. One writer at a time: `wait=False` raises
        StoreBusy at once, instead of waiting, while another writer holds the store
        (PostgreSQL: another writer of this process)."""
        ...

    def checkpoint(self) -> None:
        """The upkeep that transactions made with `wait=False` leave undone, for a thread
        to run (SQLite: moving the write-ahead log into the file); waits for this
        process's writers. Nothing to do for PostgreSQL."""
        ...

    def rows(self) -> Iterator[Mapping[str, Any]]:
        """Every decision with its latest feedback (feedback_score, feedback_source,
        feedback_weight, feedback_cloud_text), oldest first."""
        ...

    def publish_policy(self, version: str, files: Mapping[str, bytes]) -> PublishedPolicy:
        """Keeps a policy directory's files and makes it the active policy."""
        ...

    def activate_policy(self, version: str) -> PublishedPolicy:
        """Makes the latest published policy of that version the active one again."""
        ...

    def active_policy(self) -> PublishedPolicy | None: ...

    def policies(self) -> list[PublishedPolicy]:
        """Every published policy, newest first."""
        ...

    def policy_files(self, policy_id: int) -> dict[str, bytes]: ...

    def tenant_spend(self, *, budget_usd: float | None, window_s: float) -> Spend:
        """Where tenants' cloud spend is kept: in this process (SQLite: one router) or in
        the store, shared by every router of a fleet (PostgreSQL)."""
        ...

    def close(self) -> None: ...
