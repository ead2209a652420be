"""Online re-learning: the router learns a new policy from its own outcome log.

Every `relearn_interval_s`, the labelled rows of the log (Feedback and shadow labels)
become an outcome table, and `sllm learn`'s own code (`router.learning.train.learn`)
fits a candidate policy into a new versioned directory under `relearn_dir`. The learner
is given the active policy as its baseline: it scores both on the same held-out rows and
refuses the candidate (`WorsePolicy`, nothing written) when it does worse for the target.
A candidate that does no worse is swapped in through `ActivePolicy`, so a request sees one
policy or the other, and `sllm router rollback` returns to the one before.

The swapped-in policy lives in memory: a restarted router loads `policy_dir` again (point
it at the relearned directory to keep it).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import structlog

from router import export, metrics
from router.active_policy import ActivePolicy
from router.learning.thresholds import Target
from router.outcome_table import write_table
from router.outcomes import OutcomeLog
from router.scorer import Policy
from sllm.settings import RouterSettings

log = structlog.get_logger("router.relearn")

# The table the latest candidate was learned from, kept next to the policies it made.
TABLE_NAME = "relearn-table.jsonl"


@dataclass(frozen=True)
class Relearned:
    """What one re-learning run did, and why."""

    result: Literal["swapped", "refused", "skipped"]
    why: str
    # The policy learned, when the learner accepted it.
    candidate: Policy | None = None


class Relearner:
    def __init__(
        self, settings: RouterSettings, *, outcomes: OutcomeLog, policies: ActivePolicy
    ) -> None:
        self.interval_s = settings.relearn_interval_s
        self._min_rows = settings.relearn_min_labelled_rows
        self._target = Target.parse(settings.relearn_target)
        self._directory = settings.relearn_dir
        self._outcomes = outcomes
        self._policies = policies

    async def run(self) -> None:
        """Re-learns every `interval_s` until cancelled; returns at once when it is 0."""
        if self.interval_s <= 0:
            return
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except Exception as error:  # a failed run must leave the router serving
                metrics.RELEARNS.labels("failed").inc()
                log.exception("relearn.failed", error=repr(error))

    async def run_once(self) -> Relearned:
        """Learns a candidate from the log and swaps it in when it does no worse."""
        active = self._policies.current
        outcome = await asyncio.to_thread(self._learn, active)
        candidate = outcome.candidate
        if candidate is not None:
            # Swapped here, on the event loop, where requests read the active policy.
            if self._policies.current is active:
                self._policies.swap(candidate)
            else:
                outcome = Relearned(
                    "refused",
                    f"the active policy changed to {self._policies.current.version} while "
                    f"{candidate.version} was learned against {active.version}",
                    candidate,
                )
        metrics.RELEARNS.labels(outcome.result).inc()
        log.info(
            f"relearn.{outcome.result}",
            why=outcome.why,
            candidate=candidate.version if candidate is not None else None,
            active=self._policies.current.version,
        )
        return outcome

    def _learn(self, active: Policy) -> Relearned:
        # scikit-learn and onnx load only when the router first re-learns.
        from router.learning.train import LearningError, WorsePolicy, learn

        labelled = list(export.rows(self._outcomes.rows(), labelled_only=True))
        rows = [row for row in labelled if row.prompt]
        if labelled and not rows:
            return Relearned("skipped", "the log keeps no prompts (router.store_prompts = false)")
        if len(rows) < self._min_rows:
            return Relearned(
                "skipped", f"{len(rows)} labelled rows; re-learning needs {self._min_rows}"
            )
        self._directory.mkdir(parents=True, exist_ok=True)
        table = self._directory / TABLE_NAME
        write_table(rows, table)
        sha256 = hashlib.sha256(table.read_bytes()).hexdigest()
        if sha256 == active.manifest.training_data_sha256:
            return Relearned("skipped", "no new labels since the active policy was learned")
        out = self._directory / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{sha256[:8]}"
        try:
            candidate = learn(
                rows,
                target=self._target,
                out=out,
                data_sha256=sha256,
                baseline=active,
                readme=f"# Policy\n\nRe-learned by the router from {len(rows)} labelled rows "
                f"of its outcome log ({table.name}), against {active.version}.\n",
            )
        except WorsePolicy as error:
            return Relearned("refused", str(error))
        except LearningError as error:
            return Relearned("skipped", str(error))
        return Relearned(
            "swapped",
            f"on the same held-out rows it does no worse than {active.version} "
            f"(target {self._target})",
            candidate,
        )
