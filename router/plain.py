"""Records as JSON-ready dicts, fast: the outcome log builds one per request.

`dataclasses.asdict` deep-copies every leaf and looks the fields up on each call: 33 us
for a decision record, more than the rest of its outcome-log row together (the writer
thread holds the GIL meanwhile, which the requests in flight wait for). Records here
hold plain values (numbers, strings, None), other records, and tuples or lists of these,
which need no copy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_FIELDS: dict[type, tuple[str, ...]] = {}
_LEAVES = frozenset({str, float, int, bool, type(None)})


def _fields(kind: type) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is tuple or kind is list:
        return kind(_plain(item) for item in value)
    if dataclasses.is_dataclass(kind):
        return as_dict(value)
    return value


def as_dict(record: Any) -> dict[str, Any]:
    """What `dataclasses.asdict(record)` returns, for records of plain values."""
    return {name: _plain(getattr(record, name)) for name in _fields(type(record))}
