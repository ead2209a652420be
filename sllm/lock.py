"""requirements.lock: the exact versions the tests passed with (pip constraints format)."""

from __future__ import annotations

import re
from pathlib import Path

# Present in a checkout (and an editable install), absent from an installed wheel.
LOCK_FILE = Path(__file__).resolve().parent.parent / "requirements.lock"


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path = LOCK_FILE) -> dict[str, str]:
    """`name==version` lines of a pip constraints file, by canonical name."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        name, separator, version = line.split("#")[0].split(";")[0].partition("==")
        if separator:
            found[canonical(name.strip())] = version.strip()
    return found
