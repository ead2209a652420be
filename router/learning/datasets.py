"""Questions with gold answers from ../shared/data, for runs that make outcome tables.

Each task is read from its upstream file as-is (../shared/data/README.md) into `Question`s
with the answer format the edge is asked for and the accepted gold answers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sllm.answers import AnswerFormat


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    task: str
    prompt: str
    gold: tuple[str, ...]
    answer_format: AnswerFormat


def default_data_dir() -> Path:
    """../shared/data next to the repository root."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _json(path: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _number(value: float | str) -> str:
    return str(value).replace(",", "").strip()


def _gsm8k(data: Path) -> Iterator[Question]:
    for index, item in enumerate(_jsonl(data / "gsm8k" / "test.jsonl")):
        gold = item["answer"].rsplit("#### ", 1)[-1]
        yield Question(
            f"gsm8k/{index}", "gsm8k", item["question"], (_number(gold),), AnswerFormat.NUMBER
        )


def _svamp(data: Path) -> Iterator[Question]:
    for item in _json(data / "svamp" / "SVAMP.json"):
        prompt = f"{item['Body'].strip()} {item['Question'].strip()}"
        yield Question(
            f"svamp/{item['ID']}", "svamp", prompt, (_number(item["Answer"]),), AnswerFormat.NUMBER
        )


def _aqua(data: Path) -> Iterator[Question]:
    for index, item in enumerate(_jsonl(data / "aqua_rat" / "test.jsonl")):
        prompt = item["question"].strip() + "\n" + "\n".join(item["options"])
        yield Question(
            f"aqua/{index}", "aqua", prompt, (item["correct"],), AnswerFormat.CHOICE_LETTER
        )


def _yes_no(value: bool | str) -> str:
    return "yes" if str(value).lower() == "true" else "no"


def _strategyqa(data: Path) -> Iterator[Question]:
    for item in _json(data / "strategyqa" / "train.json"):
        yield Question(
            f"strategyqa/{item['qid']}",
            "strategyqa",
            item["question"],
            (_yes_no(item["answer"]),),
            AnswerFormat.YES_NO,
        )


def _boolq(data: Path) -> Iterator[Question]:
    for index, item in enumerate(_jsonl(data / "boolq" / "dev.jsonl")):
        prompt = f"{item['passage']}\n\nQuestion: {item['question']}?"
        yield Question(
            f"boolq/{index}", "boolq", prompt, (_yes_no(item["label"]),), AnswerFormat.YES_NO
        )


def _nq_open(data: Path) -> Iterator[Question]:
    for index, item in enumerate(_jsonl(data / "nq_open" / "dev.jsonl")):
        yield Question(
            f"nq_open/{index}",
            "nq_open",
            item["question"] + "?",
            tuple(item["answer"]),
            AnswerFormat.FREE_TEXT,
        )


def _webquestions(data: Path) -> Iterator[Question]:
    for name in ("val.json", "devtest.json"):
        for item in _json(data / "webquestions" / name):
            yield Question(
                f"webquestions/{item['qId']}",
                "webquestions",
                item["qText"],
                tuple(item["answers"]),
                AnswerFormat.FREE_TEXT,
            )


TASKS: dict[str, Callable[[Path], Iterator[Question]]] = {
    "gsm8k": _gsm8k,
    "svamp": _svamp,
    "aqua": _aqua,
    "strategyqa": _strategyqa,
    "boolq": _boolq,
    "nq_open": _nq_open,
    "webquestions": _webquestions,
}


def load(task: str, data: Path | None = None) -> list[Question]:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return list(TASKS[task](data or default_data_dir()))


def sample(
    tasks: Sequence[str], per_task: int, *, seed: int = 0, data: Path | None = None
) -> list[Question]:
    """`per_task` questions drawn at random from each task, interleaved like mixed traffic."""
    rng = random.Random(seed)
    drawn: list[Question] = []
    for task in tasks:
        questions = load(task, data)
        drawn += rng.sample(questions, min(per_task, len(questions)))
    rng.shuffle(drawn)
    return drawn
