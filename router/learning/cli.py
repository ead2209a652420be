"""Sub-commands of the learner for the `sllm` command."""

from __future__ import annotations

from sllm.cli import SubParsers


def register(sub: SubParsers, *, outcomes: SubParsers) -> None:
    """Adds `learn`, `evaluate`, `outcomes import`; handlers import what they need."""
