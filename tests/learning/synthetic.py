"""Synthetic outcome tables with a planted rule, so a learner's success is checkable."""

from __future__ import annotations

import random

from router.outcome_table import OutcomeRow
from router.signals import EdgeSignals

VOCABULARY = [f"w{i:03d}" for i in range(300)]
# The planted rule: the edge gets a query right exactly when it mentions one of these.
EASY_WORDS = ("apple", "banana", "cherry", "melon", "grape")


def _planted(rng: random.Random, planted: tuple[str, ...], share: float) -> tuple[list[str], bool]:
    """12 words of the vocabulary, one of them replaced by a planted word in `share` of
    the prompts; and whether it was."""
    words = rng.sample(VOCABULARY, 12)
    chosen = rng.random() < share
    if chosen:
        words[rng.randrange(12)] = rng.choice(planted)
    return words, chosen


def planted_query_rule(rows: int, *, seed: int, noise: float = 0.03) -> list[OutcomeRow]:
    """Edge right iff the prompt holds an easy word (flipped with probability `noise`);
    the cloud is always right. No edge answers: a pre-generation-only table."""
    rng = random.Random(seed)
    table = []
    for i in range(rows):
        words, easy = _planted(rng, EASY_WORDS, 0.4)
        right = easy != (rng.random() < noise)
        table.append(
            OutcomeRow(
                id=f"q{seed}-{i}",
                prompt=" ".join(words),
                edge_score=float(right),
                cloud_score=1.0,
            )
        )
    return table


def planted_answer_rule(rows: int, *, seed: int, via: str) -> list[OutcomeRow]:
    """The prompt says nothing about the outcome; only the edge's answer does, through
    `via`: "logprob" (a right answer has a high mean log-probability, the text is alike)
    or "text" (a right answer ends with a final-answer line, the statistics are alike)."""
    rng = random.Random(seed)
    table = []
    for i in range(rows):
        right = rng.random() < 0.5
        informative = via == "logprob"
        mean_logprob = rng.gauss(-0.4 if right or not informative else -2.0, 0.4)
        marked = right if via == "text" else rng.random() < 0.5
        answer = " ".join(rng.sample(VOCABULARY, 8)) + (" #### 42" if marked else " 42")
        table.append(
            OutcomeRow(
                id=f"{via}{seed}-{i}",
                prompt=" ".join(rng.sample(VOCABULARY, 12)),
                edge_answer=answer,
                edge_score=float(right),
                edge_signals=EdgeSignals(
                    mean_logprob=mean_logprob,
                    confidence_score=0.5,
                    completion_tokens=rng.randrange(5, 60),
                    answer_found=True,
                    exit_reason=rng.choice(["SETTLED", "STOP"]),
                ),
                cloud_score=1.0,
            )
        )
    return table


def planted_task_rule(rows: int, *, seed: int, tasks: int = 10) -> list[OutcomeRow]:
    """The edge is right on the even-numbered tasks (each prompt names its task), with no
    sign inside a task: a model can learn which task is easy, which says nothing about a
    task it has not seen."""
    rng = random.Random(seed)
    table = []
    for i in range(rows):
        task = rng.randrange(tasks)
        words = [*rng.sample(VOCABULARY, 10), f"topic{task}", f"topic{task}"]
        right = (task % 2 == 0) != (rng.random() < 0.05)
        table.append(
            OutcomeRow(
                id=f"t{seed}-{i}",
                prompt=" ".join(words),
                task=f"task{task}",
                edge_score=float(right),
                cloud_score=1.0,
            )
        )
    return table


# The planted mode rule: a question that holds one of these is right step by step and
# wrong directly; any other is right directly and wrong step by step.
STEPWISE_WORDS = ("sum", "total", "product", "difference")
# Two questions shaped like the table's (12 words): one the rule wants answered step by
# step, one directly.
STEPWISE_QUESTION = "w001 w002 total w003 w004 w006 w007 w008 w009 w010 w011 w012"
DIRECT_QUESTION = "w001 w002 w005 w003 w004 w006 w007 w008 w009 w010 w011 w012"


def planted_mode_rule(questions: int, *, seed: int, noise: float = 0.03) -> list[OutcomeRow]:
    """Each question answered in both modes (ids end in @DIRECT, @STEP_BY_STEP, as
    `sllm outcomes collect --reasoning both` writes them); the cloud is always right."""
    rng = random.Random(seed)
    table = []
    for i in range(questions):
        words, stepwise = _planted(rng, STEPWISE_WORDS, 0.5)
        for mode, right in (("DIRECT", not stepwise), ("STEP_BY_STEP", stepwise)):
            table.append(
                OutcomeRow(
                    id=f"m{seed}-{i}@{mode}",
                    prompt=" ".join(words),
                    task=f"task{i % 4}",
                    answer_format="FREE_TEXT",
                    edge_score=float(right != (rng.random() < noise)),
                    edge_completion_tokens=8 if mode == "DIRECT" else 120,
                    reasoning_mode=mode,  # type: ignore[arg-type]
                    cloud_score=1.0,
                )
            )
    return table
