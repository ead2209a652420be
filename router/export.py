"""`sllm outcomes export`: the router's outcome log as the outcome table the learner reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from google.protobuf.json_format import ParseDict

from router.outcome_table import OutcomeRow, write_table
from router.shadow import SHADOW_SOURCE
from router.signals import EdgeSignals
from router.store import open_store
from sllm.v1 import edge_pb2

# The feedback score judges the answer the router returned, so it labels that tier.
_EDGE_ANSWERED = ("EDGE", "EDGE_FALLBACK")


def to_outcome_row(row: Mapping[str, Any]) -> OutcomeRow:
    summary = json.loads(row["edge_summary_json"]) if row["edge_summary_json"] else None
    decision = json.loads(row["decision_json"])
    score = row["feedback_score"]
    edge_answered = row["route"] in _EDGE_ANSWERED
    shadow = row["feedback_source"] == SHADOW_SOURCE
    return OutcomeRow(
        id=row["request_id"],
        # Empty when the log keeps only a hash (router.store_prompts = false).
        prompt=row["prompt"] or "",
        source="router",
        answer_format=row["answer_format"],
        edge_model=summary.get("model", "") if summary else "",
        edge_answer=summary.get("text", "") if summary else None,
        edge_score=score if edge_answered else None,
        edge_signals=_signals(summary),
        edge_latency_ms=decision["timings"]["edge_ms"] if summary else None,
        edge_completion_tokens=int(summary.get("completionTokens", 0)) if summary else None,
        reasoning_mode=_mode(row.get("reasoning_mode")),
        cloud_model=row["cloud_model"] or "",
        cloud_answer=row["feedback_cloud_text"] if shadow else row["cloud_text"],
        cloud_score=None if edge_answered else score,
        cloud_latency_ms=decision["timings"]["cloud_ms"] if row["cloud_text"] is not None else None,
        cloud_cost_usd=row["cost_usd"] if row["cloud_text"] is not None else None,
        route=row["route"],
        label_source=_label_source(row["feedback_source"]) if score is not None else "",
        weight=row["feedback_weight"] if score is not None else 1.0,
        created_at=datetime.fromtimestamp(row["created_at"], UTC).isoformat(),
    )


def _mode(logged: object) -> Literal["", "DIRECT", "STEP_BY_STEP"]:
    """The edge's mode of an edge-answered row; "" for the cloud's answers."""
    return logged if logged in ("DIRECT", "STEP_BY_STEP") else ""


def _label_source(feedback_source: str) -> str:
    return "shadow" if feedback_source == SHADOW_SOURCE else f"feedback:{feedback_source}"


def _signals(summary: dict[str, object] | None) -> EdgeSignals | None:
    if summary is None:
        return None
    return EdgeSignals.from_summary(ParseDict(summary, edge_pb2.EdgeSummary()))


def rows(logged: Iterable[Mapping[str, Any]], *, labelled_only: bool) -> Iterator[OutcomeRow]:
    """The outcome store's rows (`OutcomeStore.rows`) as outcome-table rows."""
    for row in logged:
        if labelled_only and row["feedback_score"] is None:
            continue
        yield to_outcome_row(row)


def export(where: str | Path, out: Path, *, labelled_only: bool) -> int:
    """Writes the table from the store at `where` (a URL or a SQLite file's path);
    returns the number of rows written."""
    store = open_store(where)
    try:
        return write_table(rows(store.rows(), labelled_only=labelled_only), out)
    finally:
        store.close()
