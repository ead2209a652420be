"""Recorded data sets into outcome rows: RouteLLM's CSVs and a generic CSV/JSONL format."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from router.outcome_table import OutcomeRow

ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_STRONG = "gpt-4-1106-preview"
_RESPONSE = "_response"

# RouteLLM's responses are long; the csv module's default field limit is 128 KiB.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class ImportFormatError(ValueError):
    """A file that does not have the columns its format needs; the message says which."""


def prompt_id(prefix: str, prompt: str) -> str:
    """A stable id from the prompt, so a hash-based split keeps a question on one side."""
    return f"{prefix}/{hashlib.sha256(prompt.encode()).hexdigest()[:16]}"


def _csv_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(path.rglob("*.csv"))
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")


def _truth(value: str, *, where: str) -> float:
    text = value.strip().lower()
    if text in {"true", "1", "1.0", "yes", "correct"}:
        return 1.0
    if text in {"false", "0", "0.0", "no", "incorrect"}:
        return 0.0
    try:
        score = float(text)
    except ValueError:
        raise ImportFormatError(f"{where}: {value!r} is not a correctness value") from None
    if not 0.0 <= score <= 1.0:
        raise ImportFormatError(f"{where}: score {score} is outside [0, 1]")
    return score


class _UniqueIds:
    """Prompt-hash ids, with "-2", "-3", ... for a prompt seen again (MMLU repeats 25)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, prefix: str, prompt: str) -> str:
        base = prompt_id(prefix, prompt)
        count = self._seen[base] = self._seen.get(base, 0) + 1
        return base if count == 1 else f"{base}-{count}"


def import_routellm(
    paths: Iterable[Path], *, edge_model: str = ROUTELLM_WEAK, cloud_model: str = ROUTELLM_STRONG
) -> Iterator[OutcomeRow]:
    """RouteLLM's recorded outcomes: the weak model plays the edge, the strong one the cloud.

    A file with `<model>_response` columns (GSM8K) gives the edge's answer text too; an
    MMLU file (`mmlu_<subject>.csv`) gives correctness only. Directories are searched."""
    unique_id = _UniqueIds()
    for path in _csv_files(paths):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            missing = {"prompt", edge_model, cloud_model} - columns
            if missing:
                raise ImportFormatError(
                    f"{path}: not a RouteLLM outcome file, missing columns {sorted(missing)}"
                )
            with_answers = edge_model + _RESPONSE in columns
            source, task = (
                ("routellm/gsm8k", "gsm8k")
                if with_answers
                else ("routellm/mmlu", "mmlu/" + path.stem.removeprefix("mmlu_"))
            )
            for line, record in enumerate(reader, start=2):
                where = f"{path}:{line}"
                prompt = record["prompt"]
                yield OutcomeRow(
                    id=unique_id(source, prompt),
                    prompt=prompt,
                    source=source,
                    task=task,
                    answer_format="NUMBER" if with_answers else "CHOICE_LETTER",
                    edge_model=edge_model,
                    edge_answer=record[edge_model + _RESPONSE] if with_answers else None,
                    edge_score=_truth(record[edge_model], where=where),
                    cloud_model=cloud_model,
                    cloud_answer=record.get(cloud_model + _RESPONSE),
                    cloud_score=_truth(record[cloud_model], where=where),
                    label_source="recorded",
                )


# Generic recorded outcomes: the column names a user's own table may use.
GENERIC_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "prompt": ("prompt", "question", "query"),
    "edge_score": ("edge_score", "edge_correct"),
    "cloud_score": ("cloud_score", "cloud_correct"),
    "edge_answer": ("edge_response", "edge_answer"),
    "cloud_answer": ("cloud_response", "cloud_answer"),
    "cloud_cost_usd": ("cloud_cost", "cloud_cost_usd"),
    "task": ("task",),
    "id": ("id",),
}


def _pick(record: Mapping[str, object], field: str) -> object | None:
    for name in GENERIC_COLUMNS[field]:
        value = record.get(name)
        if value is not None and value != "":
            return value
    return None


def _generic_records(path: Path) -> Iterator[tuple[str, Mapping[str, object]]]:
    if path.suffix.lower() in {".jsonl", ".ndjson"}:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ImportFormatError(f"{path}:{number}: not JSON: {error}") from None
                    if not isinstance(record, dict):
                        raise ImportFormatError(f"{path}:{number}: expected a JSON object")
                    yield f"{path}:{number}", record
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, record in enumerate(csv.DictReader(handle), start=2):
                yield f"{path}:{number}", record


def _score(value: object | None, *, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return _truth(str(float(value)), where=where)
    return _truth(str(value), where=where)


def import_generic(paths: Iterable[Path]) -> Iterator[OutcomeRow]:
    """CSV or JSONL: `prompt`, `edge_correct` (or `edge_score`), optional `cloud_correct`,
    `edge_response`, `cloud_response`, `cloud_cost` (US dollars), `task`, `id`."""
    unique_id = _UniqueIds()
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        for where, record in _generic_records(path):
            prompt = _pick(record, "prompt")
            if not isinstance(prompt, str):
                raise ImportFormatError(f"{where}: needs a text column 'prompt'")
            edge_score = _score(_pick(record, "edge_score"), where=where)
            if edge_score is None:
                raise ImportFormatError(f"{where}: needs 'edge_correct' or 'edge_score'")
            cost = _pick(record, "cloud_cost_usd")
            edge_answer = _pick(record, "edge_answer")
            cloud_answer = _pick(record, "cloud_answer")
            yield OutcomeRow(
                id=str(_pick(record, "id") or unique_id(path.stem, prompt)),
                prompt=prompt,
                source=path.stem,
                task=str(_pick(record, "task") or ""),
                edge_answer=None if edge_answer is None else str(edge_answer),
                edge_score=edge_score,
                cloud_answer=None if cloud_answer is None else str(cloud_answer),
                cloud_score=_score(_pick(record, "cloud_score"), where=where),
                cloud_cost_usd=None if cost is None else float(str(cost)),
                label_source="recorded",
            )
