"""The one active policy: swapped atomically, reloaded when its directory changes or the
outcome store's active published policy does (`sllm policy publish`, `sllm learn
--publish`: how every router of a fleet picks up a new policy), and rolled back on demand.

A request reads `current` once and uses that object to the end, so a swap never mixes two
policies inside one request and never fails one in flight.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from router import metrics
from router.scorer import Policy
from router.store import policies as published
from router.store.base import OutcomeStore, StoreError

log = structlog.get_logger("router.policy")


class NoEarlierPolicy(RuntimeError):
    """A rollback was asked for, but no policy was active before this one."""


def _stamp(directory: Path) -> tuple[int, int] | None:
    try:
        stat = (directory / "policy.json").stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class ActivePolicy:
    def __init__(self, directory: Path, store: OutcomeStore | None = None) -> None:
        """Starts with the store's active published policy when it has one that loads,
        else the directory's."""
        self.directory = directory
        self._stamp = _stamp(directory)
        self._store = store
        # The published policy last loaded or refused, so each is tried once.
        self._published_id: int | None = None
        self._current = self._load_published() or Policy.load(directory)
        self._previous: Policy | None = None

    @property
    def current(self) -> Policy:
        return self._current

    def swap(self, policy: Policy) -> None:
        self._previous, self._current = self._current, policy
        metrics.POLICY_LOADS.labels("swapped").inc()
        log.info("policy.swapped", version=policy.version, previous=self._previous.version)

    def rollback(self) -> Policy:
        """Returns to the policy active before the last swap."""
        if self._previous is None:
            raise NoEarlierPolicy("no earlier policy to roll back to: none was swapped out")
        self.swap(self._previous)
        return self._current

    def reload_if_changed(self) -> bool:
        """Loads the store's active published policy when another was published or
        activated, else the directory's when policy.json changed; a bad one is refused."""
        policy = self._load_published()
        if policy is not None:
            self.swap(policy)
            return True
        stamp = _stamp(self.directory)
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = Policy.load(self.directory)
        except Exception as error:  # any bad file must leave the active policy serving
            metrics.POLICY_LOADS.labels("refused").inc()
            log.error("policy.reload_refused", directory=str(self.directory), error=str(error))
            return False
        self.swap(policy)
        return True

    def _load_published(self) -> Policy | None:
        """The store's active policy when it is not the one last tried and loads."""
        if self._store is None:
            return None
        try:
            active = self._store.active_policy()
            if active is None or active.id == self._published_id:
                return None
            files = self._store.policy_files(active.id)
        except StoreError as error:  # the store may come back: the next poll tries again
            log.warning("policy.store_unreachable", error=str(error))
            return None
        self._published_id = active.id
        try:
            return published.load(files)
        except Exception as error:  # any bad file must leave the active policy serving
            metrics.POLICY_LOADS.labels("refused").inc()
            log.error("policy.published_refused", version=active.version, error=str(error))
            return None
