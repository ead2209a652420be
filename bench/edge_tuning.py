"""Tuning the early-exit defaults on real data, by replay.

Decoding is greedy, so a generation with early exit on is a prefix of the same generation
with early exit off. One recorded run with early exit off (every token's text and
log-probability, as the worker streams them) therefore answers for any thresholds: the
`ExitJudge` replays the tokens and says where each setting would have stopped.

    python -m bench.edge_tuning record --out runs.jsonl [--count 150 --seed 1]
    python -m bench.edge_tuning replay runs.jsonl

The recorded questions exclude those `sllm bench edge` measures (its seed-0 sample), so
the benchmark stays a fair test of the chosen defaults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.edge import Question, answer_request, load_questions, worker
from edge_worker.confidence import TokenChoice
from edge_worker.early_exit import ExitJudge, ExitRules
from edge_worker.prompts import ReasoningMode, primer
from sllm.answers import AnswerFormat, answers_match
from sllm.settings import EarlyExitDefaults

SETTLE = (-1.5, -1.0, -0.5)
COLLAPSE = (-1.5, -1.25, -1.0, -0.8)
WINDOWS = (8, 16)
MIN_TOKENS = (16, 32)
REPEATS = (0, 8, 12, 16, 32)


@dataclass(frozen=True)
class Recorded:
    gold: str
    fmt: AnswerFormat
    pieces: list[str]
    logprobs: list[float]
    entropies: list[float]


def unmeasured_questions(count: int, seed: int) -> list[Question]:
    """`count` questions none of which the benchmark measures, the sources taking turns
    (so that every source is as well represented, even in a recording cut short)."""
    measured = {q.text for q in load_questions(200)}
    by_source: dict[str, list[Question]] = {}
    for question in load_questions(count * 2, seed=seed):
        if question.text not in measured:
            by_source.setdefault(question.source, []).append(question)
    turns = itertools.zip_longest(*by_source.values())
    return [question for turn in turns for question in turn if question is not None][:count]


def record(out: Path, count: int, seed: int, max_tokens: int) -> None:
    picked = unmeasured_questions(count, seed)
    with worker() as (stub, _), out.open("w") as file:
        for question in picked:
            request = answer_request(question, early_exit=False, max_tokens=max_tokens)
            pieces: list[str] = []
            logprobs: list[float] = []
            entropies: list[float] = []
            for event in stub.Generate(request, timeout=600):
                if event.HasField("delta"):
                    pieces.append(event.delta.text)
                    logprobs.append(event.delta.logprob)
                    entropies.append(event.delta.entropy)
            file.write(
                json.dumps(
                    {
                        "source": question.source,
                        "gold": question.gold,
                        "fmt": question.fmt.value,
                        "pieces": pieces,
                        "logprobs": logprobs,
                        "entropies": entropies,
                    }
                )
                + "\n"
            )
            file.flush()


def _load(path: Path) -> list[Recorded]:
    rows = [json.loads(line) for line in path.open()]
    return [
        Recorded(
            row["gold"], AnswerFormat(row["fmt"]), row["pieces"], row["logprobs"], row["entropies"]
        )
        for row in rows
    ]


def replay(run: Recorded, rules: ExitRules) -> tuple[int, bool]:
    """Tokens the generation would have taken under `rules`, and whether it was right."""
    judge = ExitJudge(primer(ReasoningMode.STEP_BY_STEP, run.fmt), run.fmt, rules)
    for piece, logprob, entropy in zip(run.pieces, run.logprobs, run.entropies, strict=True):
        if judge.add(piece, TokenChoice(0, logprob, entropy)) is not None:
            break
    judged = judge.finish()
    return judged.completion_tokens, answers_match(judged.final_answer, run.gold, run.fmt)


def _score(runs: list[Recorded], rules: ExitRules) -> tuple[float, float]:
    """(token saving, accuracy) of `rules` over the recorded runs."""
    results = [replay(run, rules) for run in runs]
    total = sum(len(run.pieces) for run in runs)
    return 1 - sum(t for t, _ in results) / total, sum(ok for _, ok in results) / len(runs)


def tune(path: Path, max_accuracy_drop: float) -> None:
    runs = _load(path)
    off = ExitRules(False, 0.0, 0.0, 1, 0, 0)
    _, baseline = _score(runs, off)
    defaults = EarlyExitDefaults()
    current = ExitRules(
        True,
        defaults.settle_min_logprob,
        defaults.collapse_max_logprob,
        defaults.collapse_window,
        defaults.collapse_min_tokens,
        defaults.collapse_repeat_tokens,
    )
    saving, accuracy = _score(runs, current)
    print(
        f"{len(runs)} recorded generations, {sum(len(r.pieces) for r in runs)} tokens; "
        f"accuracy with early exit off {baseline:.3f}"
    )
    print(f"current defaults {current}: saving {saving:.3f}, accuracy {accuracy:.3f}")
    # Equal accuracy may hide answers lost and others won by chance (a cut that leaves a
    # number which happens to be the gold one): count both.
    right = [(replay(run, off)[1], replay(run, current)[1]) for run in runs]
    print(
        f"  answers lost {sum(a and not b for a, b in right)}, "
        f"won {sum(b and not a for a, b in right)}"
    )
    grid = []
    for settle, collapse, window, min_tokens, repeat in itertools.product(
        SETTLE, COLLAPSE, WINDOWS, MIN_TOKENS, REPEATS
    ):
        rules = ExitRules(True, settle, collapse, window, min_tokens, repeat)
        grid.append((*_score(runs, rules), rules))
    grid.sort(key=lambda row: (-row[0], -row[1]))
    print("trade-off (the most saving for each accuracy reached):")
    best_accuracy = -1.0
    for saving, accuracy, rules in grid:
        if accuracy > best_accuracy:
            best_accuracy = accuracy
            print(f"  {_describe(saving, accuracy, rules)}")
    allowed = [row for row in grid if row[1] >= baseline - max_accuracy_drop]
    print(f"best settings with accuracy >= {baseline - max_accuracy_drop:.3f}:")
    for saving, accuracy, rules in allowed[:5]:
        print(f"  {_describe(saving, accuracy, rules)}")


def _describe(saving: float, accuracy: float, rules: ExitRules) -> str:
    return (
        f"saving {saving:.3f} accuracy {accuracy:.3f}  settle>={rules.settle_min_logprob}"
        f" collapse<{rules.collapse_max_logprob} window={rules.collapse_window}"
        f" min_tokens={rules.collapse_min_tokens} repeat={rules.collapse_repeat_tokens}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.edge_tuning")
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record", help="record generations with early exit off")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--count", type=int, default=150)
    rec.add_argument("--seed", type=int, default=1)
    rec.add_argument("--max-tokens", type=int, default=256)
    rep = sub.add_parser("replay", help="replay recorded generations over a threshold grid")
    rep.add_argument("path", type=Path)
    rep.add_argument("--max-accuracy-drop", type=float, default=0.01)
    args = parser.parse_args(argv)
    if args.action == "record":
        record(args.out, args.count, args.seed, args.max_tokens)
    else:
        tune(args.path, args.max_accuracy_drop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
