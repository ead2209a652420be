"""The result of one check of an installation: `sllm doctor` prints one line each, and
`sllm up` refuses to start on a failed engine probe with the same line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    # What to do about a failure, naming the setting to change; empty when the detail says it.
    advice: str = ""

    def line(self) -> str:
        """`ok    ports      ...`, or `FAIL  ports      what is wrong: what to do`."""
        text = f"{self.detail}: {self.advice}" if self.advice else self.detail
        return f"{'ok' if self.ok else 'FAIL':<6}{self.name:<11}{text}"
