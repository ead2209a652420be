"""Where a benchmark leaves its figures: `NAME.json` (and its plots) in an output
directory, and its headline as key=value pairs on its last line of output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path("bench-results")


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def headline(figures: dict[str, float]) -> str:
    """One line of key=value pairs; integers stay integers, the rest 4 decimals."""
    return " ".join(
        f"{key}={value}" if isinstance(value, int) else f"{key}={value:.4f}"
        for key, value in figures.items()
    )


def parse_headline(line: str) -> dict[str, str]:
    """The pairs of a headline line; a word without '=' is not a headline."""
    pairs = [word.split("=", 1) for word in line.split()]
    if not pairs or any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise ValueError(f"not a key=value line: {line!r}")
    return {key: value for key, value in pairs}


def write_json(out: Path, name: str, data: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
