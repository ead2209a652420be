"""Synthetic outcome tables with a planted rule, so a learner's success is checkable."""

from __future__ import annotations

import random

from router.outcome_table import OutcomeRow
from router.signals import EdgeSignals

VOCABULARY = [f"w{i:03d}" for i in range(300)]
# The planted rule: the edge gets a query right exactly when it mentions one of these.
EASY_WORDS = ("apple", "banana", "cherry", "melon", "grape")


def planted_query_rule(rows: int, *, seed: int, noise: float = 0.03) -> list[OutcomeRow]:
    """Edge right iff the prompt holds an easy word (flipped with probability `noise`);
    the cloud is always right. No edge answers: a pre-generation-only table."""
    rng = random.Random(seed)
    table = []
    for i in range(rows):
        words = rng.sample(VOCABULARY, 12)
        easy = rng.random() < 0.4
        if easy:
            words[rng.randrange(12)] = rng.choice(EASY_WORDS)
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
