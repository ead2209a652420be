"""What both backends share: the statements, written once with `:name` parameters, and
the store's operations over them. A backend supplies connections and transactions."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from router.store.base import FeedbackRow, PublishedPolicy, StoreError

DECISION_COLUMNS = (
    "request_id",
    "created_at",
    "tenant",
    "client_request_id",
    "prompt_sha256",
    "prompt",
    "messages_json",
    "answer_format",
    "route",
    "reasoning_mode",
    "degraded",
    "policy_version",
    "p_edge_ok",
    "p_edge_ok_after",
    "edge_summary_json",
    "cloud_text",
    "cloud_model",
    "answer",
    "final_answer",
    "cost_usd",
    "total_ms",
    "decision_json",
)
# A row written again (the same request id) replaces the first, as it always did.
INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(DECISION_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in DECISION_COLUMNS)}) "
    "ON CONFLICT (request_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in DECISION_COLUMNS[1:])
)
ADD_FEEDBACK = (
    "INSERT INTO feedback (request_id, score, source, created_at, weight, cloud_text) "
    "SELECT :request_id, :score, :source, :created_at, :weight, :cloud_text "
    "WHERE EXISTS (SELECT 1 FROM decisions WHERE request_id = :request_id) RETURNING id"
)
ROWS = (
    "SELECT d.*, f.score AS feedback_score, f.source AS feedback_source, "
    "f.weight AS feedback_weight, f.cloud_text AS feedback_cloud_text "
    "FROM decisions d LEFT JOIN feedback f ON f.id = "
    "(SELECT MAX(id) FROM feedback WHERE request_id = d.request_id) "
    "ORDER BY d.created_at"
)
_POLICY = "SELECT id, version, created_at, active FROM policies"


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


# Runs one statement with its parameters inside the current transaction.
Run = Callable[[str, Mapping[str, Any]], Cursor]


class SqlWrites:
    def __init__(self, run: Run) -> None:
        self._run = run

    def insert_decision(self, row: Mapping[str, Any]) -> None:
        self._run(INSERT_DECISION, row)

    def add_feedback(self, feedback: FeedbackRow) -> bool:
        return self._run(ADD_FEEDBACK, dataclasses.asdict(feedback)).fetchone() is not None


def _published(row: Any) -> PublishedPolicy:
    return PublishedPolicy(int(row[0]), str(row[1]), float(row[2]), bool(row[3]))


class SqlStore(ABC):
    where: str
    schema_version: int
    # The exceptions of the backend's driver, turned into StoreError.
    driver_errors: tuple[type[Exception], ...]

    @abstractmethod
    def _transaction(self, *, writer: bool, wait: bool = True) -> AbstractContextManager[Run]:
        """A transaction on a writer's connection, or on one for everything else; `wait`:
        as `OutcomeStore.transaction`'s (writers only)."""

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[SqlWrites]:
        with self._errors(), self._transaction(writer=True, wait=wait) as run:
            yield SqlWrites(run)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self.driver_errors as error:
            raise StoreError(f"{self.where}: {error}") from error

    @abstractmethod
    def _lock_policies(self, run: Run) -> None:
        """Keeps two publishers from activating policies at once."""

    def publish_policy(self, version: str, files: Mapping[str, bytes]) -> PublishedPolicy:
        with self._errors(), self._transaction(writer=False) as run:
            self._lock_policies(run)
            run("UPDATE policies SET active = false WHERE active", {})
            row = run(
                "INSERT INTO policies (version, created_at, active) "
                "VALUES (:version, :created_at, true) RETURNING id, version, created_at, active",
                {"version": version, "created_at": time.time()},
            ).fetchone()
            for name, data in sorted(files.items()):
                run(
                    "INSERT INTO policy_files (policy_id, name, data) VALUES (:id, :name, :data)",
                    {"id": row[0], "name": name, "data": data},
                )
        return _published(row)

    def activate_policy(self, version: str) -> PublishedPolicy:
        with self._errors(), self._transaction(writer=False) as run:
            self._lock_policies(run)
            row = run(
                f"{_POLICY} WHERE version = :version ORDER BY id DESC LIMIT 1",
                {"version": version},
            ).fetchone()
            if row is None:
                raise StoreError(f"{self.where}: no published policy has version {version!r}")
            run("UPDATE policies SET active = false WHERE active AND id <> :id", {"id": row[0]})
            run("UPDATE policies SET active = true WHERE id = :id", {"id": row[0]})
        return PublishedPolicy(int(row[0]), str(row[1]), float(row[2]), True)

    def active_policy(self) -> PublishedPolicy | None:
        with self._errors(), self._transaction(writer=False) as run:
            row = run(f"{_POLICY} WHERE active", {}).fetchone()
        return None if row is None else _published(row)

    def policies(self) -> list[PublishedPolicy]:
        with self._errors(), self._transaction(writer=False) as run:
            rows = run(f"{_POLICY} ORDER BY id DESC", {}).fetchall()
        return [_published(row) for row in rows]

    def policy_files(self, policy_id: int) -> dict[str, bytes]:
        with self._errors(), self._transaction(writer=False) as run:
            rows = run(
                "SELECT name, data FROM policy_files WHERE policy_id = :id", {"id": policy_id}
            ).fetchall()
        return {str(name): bytes(data) for name, data in rows}
