"""The outcome table: the one format the learner reads, whatever the source.

JSON Lines, one `OutcomeRow` per query (docs/outcome-table.md). Sources: the router's
outcome log (`sllm outcomes export`), recorded data sets (`sllm outcomes import`) and
benchmark runs.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from router.signals import EdgeSignals

FORMAT_VERSION = 1


class OutcomeRow(BaseModel):
    """One query, what each tier answered and how good that was.

    Scores are in [0, 1] (1 = acceptable); None when that tier's outcome is unknown."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    prompt: str
    # Where the row comes from: "router", "routellm/gsm8k", "routellm/mmlu", "csv", ...
    source: str = ""
    # The task or subject inside the source, for per-task figures ("mmlu/anatomy").
    task: str = ""
    answer_format: str = ""
    edge_model: str = ""
    edge_answer: str | None = None
    edge_score: float | None = Field(default=None, ge=0.0, le=1.0)
    edge_signals: EdgeSignals | None = None
    edge_latency_ms: float | None = Field(default=None, ge=0.0)
    edge_completion_tokens: int | None = Field(default=None, ge=0)
    # How the edge answered: DIRECT or STEP_BY_STEP; empty when unknown. A table with rows
    # of both modes teaches the policy which one to use (docs/learning.md).
    reasoning_mode: Literal["", "DIRECT", "STEP_BY_STEP"] = ""
    cloud_model: str = ""
    cloud_answer: str | None = None
    cloud_score: float | None = Field(default=None, ge=0.0, le=1.0)
    cloud_latency_ms: float | None = Field(default=None, ge=0.0)
    cloud_prompt_tokens: int | None = Field(default=None, ge=0)
    cloud_completion_tokens: int | None = Field(default=None, ge=0)
    cloud_cost_usd: float | None = Field(default=None, ge=0.0)
    # What the router did for this query, when it came from the router's log.
    route: str = ""
    # "feedback", "shadow", "judge", "recorded": where the scores come from.
    label_source: str = ""
    # Inverse of the probability with which this row's label was observed (shadow
    # exploration labels a fraction of edge answers; weighting corrects that bias).
    weight: float = Field(default=1.0, gt=0.0)
    created_at: str = ""

    @field_validator("edge_signals", mode="before")
    @classmethod
    def _signals_from_mapping(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return EdgeSignals.from_mapping(value)
        return value

    @property
    def edge_acceptable(self) -> bool | None:
        """The learner's label: escalating this query would not have improved its answer.

        With both outcomes known, the edge is acceptable when it did at least as well as
        the cloud (a query both tiers fail gains nothing from the cloud); with only the
        edge's, when it scored at least 0.5. None when the edge's outcome is unknown."""
        if self.edge_score is None:
            return None
        if self.cloud_score is not None:
            return self.edge_score >= self.cloud_score
        return self.edge_score >= 0.5


class TableError(ValueError):
    """A table that cannot be read; the message names the file and line."""


def row_to_json(row: OutcomeRow) -> str:
    data = row.model_dump(exclude_defaults=True)
    data["id"] = row.id
    data["prompt"] = row.prompt
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def write_table(rows: Iterable[OutcomeRow], path: Path) -> int:
    """Writes the table atomically (a reader never sees half a file); returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(row_to_json(row))
                out.write("\n")
                count += 1
        os.chmod(tmp_name, 0o644)  # mkstemp's 0600 is for the half-written file only
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return count


def read_table(path: Path) -> list[OutcomeRow]:
    path = Path(path)
    rows: list[OutcomeRow] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(OutcomeRow.model_validate_json(line))
            except ValidationError as error:
                raise TableError(f"{path}:{number}: not an outcome row: {error}") from error
    return rows
