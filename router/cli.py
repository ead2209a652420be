"""Sub-commands of the router for the `sllm` command."""

from __future__ import annotations

from sllm.cli import SubParsers


def register(sub: SubParsers, *, outcomes: SubParsers) -> None:
    """Adds `up`, `ask`, `router serve`, `outcomes export`; handlers import what they need."""
