"""A policy directory as the store keeps it (its files' bytes by name), and back."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from router.scorer import Policy, PolicyError
from router.store.base import OutcomeStore, PublishedPolicy


def pack(directory: Path) -> dict[str, bytes]:
    """The directory's files (a policy directory has no subdirectories)."""
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def unpack(files: Mapping[str, bytes], directory: Path) -> None:
    for name, data in files.items():
        # Names come from the store: one that would leave the directory is refused.
        if name in {"", ".", ".."} or Path(name).name != name:
            raise PolicyError(f"published policy file name {name!r} is not a plain file name")
        (directory / name).write_bytes(data)


def load(files: Mapping[str, bytes]) -> Policy:
    """Loads a published policy through the same checks as a directory's; the files are
    read into memory, so the temporary directory goes at once."""
    with tempfile.TemporaryDirectory(prefix="sllm-published-policy-") as scratch:
        unpack(files, Path(scratch))
        return Policy.load(scratch)


def publish(store: OutcomeStore, directory: Path) -> PublishedPolicy:
    """Publishes a policy directory that loads (a broken one raises PolicyError here,
    before any router sees it)."""
    policy = Policy.load(directory)
    return store.publish_policy(policy.version, pack(directory))


def active(store: OutcomeStore) -> Policy | None:
    """The store's active published policy, loaded; None when none was published."""
    published = store.active_policy()
    return None if published is None else load(store.policy_files(published.id))
