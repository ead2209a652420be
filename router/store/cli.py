"""`sllm policy publish|activate|list`: the policies every router of a fleet loads from
the outcome store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sllm.cli import SubParsers
from sllm.settings import get_settings

if TYPE_CHECKING:
    from router.store.base import OutcomeStore


def chosen_store(url: str | None) -> str:
    """`--store`, else the router's settings: router.outcome_store, else outcome_db."""
    from router.store import store_url

    return url or store_url(get_settings().router)


@contextmanager
def opened(url: str | None) -> Iterator[OutcomeStore]:
    from router.store import open_store

    store = open_store(chosen_store(url))
    try:
        yield store
    finally:
        store.close()


def add_store_option(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the outcome store, sqlite:///PATH or postgresql://... (default: settings "
        "router.outcome_store, else router.outcome_db)",
    )


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _publish(args: argparse.Namespace) -> int:
    from router.scorer import PolicyError
    from router.store import StoreError
    from router.store.policies import publish

    try:
        with opened(args.store) as store:
            published = publish(store, Path(args.directory))
    except (StoreError, PolicyError) as error:
        return _fail(str(error))
    print(f"published policy {published.version} (#{published.id}) to {store.where}: active")
    return 0


def _activate(args: argparse.Namespace) -> int:
    from router.store import StoreError

    try:
        with opened(args.store) as store:
            published = store.activate_policy(args.version)
    except StoreError as error:
        return _fail(str(error))
    print(f"policy {published.version} (#{published.id}) is active in {store.where}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from router.store import StoreError

    try:
        with opened(args.store) as store:
            published = store.policies()
    except StoreError as error:
        return _fail(str(error))
    for policy in published:
        when = datetime.fromtimestamp(policy.created_at, UTC).isoformat(timespec="seconds")
        print(f"{'*' if policy.active else ' '} #{policy.id} {policy.version} {when}")
    return 0


def register(sub: SubParsers) -> None:
    policy = sub.add_parser(
        "policy", help="policies in the outcome store, which every router of a fleet loads"
    )
    actions = policy.add_subparsers(required=True, metavar="ACTION")
    publish = actions.add_parser(
        "publish", help="store a policy directory and make it the active policy"
    )
    publish.add_argument("directory", metavar="DIR")
    publish.set_defaults(handler=_publish)
    activate = actions.add_parser(
        "activate", help="make an earlier published version the active policy again"
    )
    activate.add_argument("version")
    activate.set_defaults(handler=_activate)
    listing = actions.add_parser("list", help="published policies, newest first (* active)")
    listing.set_defaults(handler=_list)
    for parser in (publish, activate, listing):
        add_store_option(parser)
