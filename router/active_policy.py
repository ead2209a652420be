"""The one active policy: swapped atomically, reloaded when its directory changes, and
rolled back on demand.

A request reads `current` once and uses that object to the end, so a swap never mixes two
policies inside one request and never fails one in flight.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from router import metrics
from router.scorer import Policy

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
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stamp = _stamp(directory)
        self._current = Policy.load(directory)
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
        """Loads the directory's policy when policy.json changed; a bad one is refused."""
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
