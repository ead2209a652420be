"""router/plain.py: the outcome log's fast `dataclasses.asdict` gives exactly what asdict
gives for the records it is used on, so the stored decision_json does not change."""

from __future__ import annotations

import dataclasses
import json

from router.plain import as_dict
from router.record import DecisionRecord
from sllm.chat import ChatMessage
from tests.router.test_outcomes import _entry


def _record() -> DecisionRecord:
    """Nested records, a tuple, optional and set values."""
    return dataclasses.replace(
        _entry("r1").result.decision,
        p_edge_ok_after=0.125,
        shadow=True,
        pii_kinds=("email", "iban"),
    )


def test_a_decision_record_as_asdict_gives_it() -> None:
    record = _record()
    assert as_dict(record) == dataclasses.asdict(record)
    assert json.dumps(as_dict(record)) == json.dumps(dataclasses.asdict(record))


def test_messages_as_asdict_gives_them() -> None:
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    assert [as_dict(m) for m in messages] == [dataclasses.asdict(m) for m in messages]


def test_nested_records_are_copies() -> None:
    record = _record()
    plain = as_dict(record)
    plain["budget"]["est_cloud_ms"] = 1.0
    assert record.budget.est_cloud_ms == 700.0
