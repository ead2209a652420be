"""Online re-learning: a candidate learned from the outcome log replaces the active policy
only when it does no worse on the same held-out rows.

The logs here are synthetic (rows written through the real OutcomeLog, then the real
export, learner and ActivePolicy): re-learning needs a hundred or more labelled rows with
a known planted rule, which the real edge model would take many minutes to produce, and
the refusal needs a log whose training rows contradict its held-out rows, which real
traffic gives only by chance.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
from pathlib import Path

import pytest

from router.active_policy import ActivePolicy
from router.edge_client import EdgeAnswer
from router.learning.thresholds import Target
from router.learning.train import HOLDOUT_SHARE, held_out, learn
from router.outcome_table import OutcomeRow
from router.outcomes import LoggedRequest, OutcomeLog
from router.relearn import TABLE_NAME, Relearned, Relearner
from router.scorer import default_policy_dir
from sllm.chat import ChatMessage
from sllm.settings import RouterSettings
from sllm.v1 import edge_pb2, router_pb2
from tests.fixtures.router import CLOSED_PORT_TARGET, RouterFactory, closed_cloud

# The outcome log's own tests build a logged request the same way.
from tests.router.test_outcomes import _entry

# The planted rule: the edge is right about fruit, wrong about higher mathematics.
EASY_TOPICS = ("apples", "pears", "plums", "grapes", "cherries", "melons")
HARD_TOPICS = ("integrals", "eigenvalues", "manifolds", "tensors", "homology", "sheaves")
ROWS = 160
ANSWER = "The answer is in the textbook."


def planted(seed: int = 0) -> list[tuple[str, str, bool]]:
    """(request id, prompt, edge right) rows, half easy and half hard."""
    rng = random.Random(seed)
    rows = []
    for index in range(ROWS):
        easy = index % 2 == 0
        topic = rng.choice(EASY_TOPICS if easy else HARD_TOPICS)
        prompt = f"Question {index}: what do you know about {topic}?"
        rows.append((f"req-{seed}-{index:04d}", prompt, easy))
    return rows


def logged(request_id: str, prompt: str) -> LoggedRequest:
    """An edge-answered request as the router logs it."""
    entry = _entry(request_id)
    summary = edge_pb2.EdgeSummary(text=ANSWER, model="synthetic-edge", completion_tokens=6)
    result = dataclasses.replace(
        entry.result,
        text=ANSWER,
        final_answer=ANSWER,
        route="EDGE",
        reasoning_mode="DIRECT",
        edge=EdgeAnswer(summary),
        cloud_text=None,
        cloud_model=None,
    )
    return dataclasses.replace(
        entry, query_text=prompt, messages=[ChatMessage("user", prompt)], result=result
    )


async def write_log(
    db: str | Path, rows: list[tuple[str, str, bool]], *, store_prompts: bool = True
) -> None:
    """`db`: a store's URL, or a SQLite file's path."""
    log = OutcomeLog(db, store_prompts=store_prompts, queue_size=1000)
    try:
        for request_id, prompt, _ in rows:
            log.record(logged(request_id, prompt))
        for request_id, _, right in rows:
            assert await log.feedback(request_id, 1.0 if right else 0.0, "gold")
    finally:
        await asyncio.to_thread(log.close)


async def relearn_once(db: Path, policies: ActivePolicy, relearn_dir: Path) -> Relearned:
    settings = RouterSettings(relearn_min_labelled_rows=100, relearn_dir=relearn_dir)
    log = OutcomeLog(db, store_prompts=True, queue_size=10)
    try:
        return await Relearner(settings, outcomes=log, policies=policies).run_once()
    finally:
        log.close()


def policy_dirs(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if path.is_dir())


async def test_a_better_candidate_is_swapped_in_and_can_be_rolled_back(tmp_path: Path) -> None:
    db = tmp_path / "log.sqlite3"
    await write_log(db, planted())
    # The shipped policy learned RouteLLM's traffic: it cannot know the planted rule.
    policies = ActivePolicy(default_policy_dir())
    shipped = policies.current
    outcome = await relearn_once(db, policies, tmp_path / "policies")
    assert outcome.result == "swapped", outcome.why
    candidate = outcome.candidate
    assert candidate is not None and policies.current is candidate
    assert policy_dirs(tmp_path / "policies") == [candidate.directory]
    assert (tmp_path / "policies" / TABLE_NAME).is_file()
    assert candidate.manifest.validation["baseline"]["version"] == shipped.version
    # Questions shaped like the logged ones (the model reads their shape too).
    assert candidate.p_edge_ok("Question 7: what do you know about plums?") > candidate.p_edge_ok(
        "Question 7: what do you know about sheaves?"
    )
    assert policies.rollback() is shipped


async def test_a_worse_candidate_is_refused_and_the_active_policy_stays(tmp_path: Path) -> None:
    # The active policy knows the rule; in the log, the rows the learner trains on say the
    # opposite of the rows it holds out, so its candidate ranks them backwards.
    rows = planted(seed=1)
    clean = [
        OutcomeRow(id=i, prompt=p, edge_answer=ANSWER, edge_score=float(r)) for i, p, r in planted()
    ]
    learn(clean, target=Target.parse("quality=0.95"), out=tmp_path / "active", data_sha256="0" * 64)
    policies = ActivePolicy(tmp_path / "active")
    active = policies.current
    side = held_out([OutcomeRow(id=i, prompt=p) for i, p, _ in rows], HOLDOUT_SHARE, salt="learn")
    contradicting = [
        (i, p, r if held else not r) for (i, p, r), held in zip(rows, side, strict=True)
    ]
    db = tmp_path / "log.sqlite3"
    await write_log(db, contradicting)
    outcome = await relearn_once(db, policies, tmp_path / "policies")
    assert outcome.result == "refused", outcome.why
    assert outcome.why.startswith("refused: on the same")
    assert f"the baseline {active.version}" in outcome.why
    assert policies.current is active
    assert policy_dirs(tmp_path / "policies") == []


async def test_too_few_labelled_rows_or_no_prompts_are_skipped(tmp_path: Path) -> None:
    policies = ActivePolicy(default_policy_dir())
    for store_prompts, why in (
        (True, "1 labelled rows; re-learning needs 100"),
        (False, "the log keeps no prompts (router.store_prompts = false)"),
    ):
        db = tmp_path / f"log-{store_prompts}.sqlite3"
        await write_log(db, planted()[:1], store_prompts=store_prompts)
        outcome = await relearn_once(db, policies, tmp_path / "policies")
        assert (outcome.result, outcome.why) == ("skipped", why)
    assert policies.current.version == ActivePolicy(default_policy_dir()).current.version


@pytest.mark.slow
async def test_a_serving_router_relearns_on_its_schedule(
    router_factory: RouterFactory, tmp_path: Path
) -> None:
    db = tmp_path / "log.sqlite3"
    await write_log(db, planted())
    # No tier is needed to re-learn: the edge and the cloud are down.
    router = await router_factory(
        edge_target=CLOSED_PORT_TARGET,
        cloud=closed_cloud(),
        db=db,
        store_prompts=True,
        relearn_interval_s=0.2,
        relearn_min_labelled_rows=100,
        relearn_dir=tmp_path / "policies",
    )
    before = await router.stub.GetPolicy(router_pb2.GetPolicyRequest())
    for _ in range(600):
        after = await router.stub.GetPolicy(router_pb2.GetPolicyRequest())
        if after.version != before.version:
            break
        await asyncio.sleep(0.2)
    assert after.version != before.version
    (relearned,) = policy_dirs(tmp_path / "policies")
    assert json.loads((relearned / "policy.json").read_text())["version"] == after.version
