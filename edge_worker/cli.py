"""Sub-commands of this component for the `sllm` command."""

from __future__ import annotations

from sllm.cli import SubParsers


def register(sub: SubParsers) -> None:
    """Adds this component's sub-commands; the handlers import what they need."""
