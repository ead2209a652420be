"""From the router's exported log to one outcome row per question.

Phase 1 logs each question twice: an EDGE_ONLY request (the edge's answer, its signals and
its Feedback: the row's edge outcome) and a CLOUD_ONLY one (the cloud's answer and
Feedback: the cloud outcome). The learner wants both outcomes on one row, so the cloud
fields of the second are merged into the first, which takes the question's id and task.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.live.traffic import Answered
from router.outcome_table import OutcomeRow

_CLOUD_FIELDS = tuple(name for name in OutcomeRow.model_fields if name.startswith("cloud_"))


class IncompleteLog(RuntimeError):
    """The exported log lacks a request the benchmark made, or its Feedback."""


def _logged(exported: dict[str, OutcomeRow], answered: Answered, field: str) -> OutcomeRow:
    row = exported.get(answered.request_id)
    if row is None:
        raise IncompleteLog(f"request {answered.request_id} ({answered.question.id}) not logged")
    if getattr(row, field) != answered.score:
        raise IncompleteLog(
            f"request {answered.request_id} ({answered.question.id}): {field} is "
            f"{getattr(row, field)!r}, the Feedback sent was {answered.score}"
        )
    return row


def per_question(
    exported: Sequence[OutcomeRow], edge: Sequence[Answered], cloud: Sequence[Answered]
) -> list[OutcomeRow]:
    """One row per question answered by both tiers, in traffic order."""
    by_request = {row.id: row for row in exported}
    cloud_by_question = {answered.question.id: answered for answered in cloud}
    rows = []
    for answered in edge:
        if answered.question.id not in cloud_by_question:
            continue
        edge_row = _logged(by_request, answered, "edge_score")
        cloud_row = _logged(by_request, cloud_by_question[answered.question.id], "cloud_score")
        cloud_fields = {name: getattr(cloud_row, name) for name in _CLOUD_FIELDS}
        rows.append(
            edge_row.model_copy(
                update={"id": answered.question.id, "task": answered.question.task, **cloud_fields}
            )
        )
    return rows
