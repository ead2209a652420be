"""Shadow exploration: labels for edge answers without a user's feedback.

With probability p, a query answered at the edge also goes to the cloud in the
background, and a judge compares the two answers; the label goes to the query's row in
the outcome log with weight 1/p. Without it the log would judge the edge mostly where
the policy doubted it (escalated queries); sampling accepted answers at a known rate, and
weighting by its inverse, undoes that selection bias.

A shadow call is never on the request's path: it starts after the answer is final, at
most `shadow_max_in_flight` run at once, and a failure costs the label, never the answer.
It is made only when the router would allow a cloud call for the query itself (no
`local_only` or EDGE_ONLY, the breaker closed, within the cost ceiling and the tenant's
budget), and it holds its estimated cost against the tenant's budget, then is charged its
real cost, like any cloud call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Callable

import structlog

from cloud_adapter import CloudClient, CloudError
from router import metrics
from router import policy as decide
from router.learning.judge import Judge
from router.outcomes import OutcomeLog, OutcomeLogFull
from router.policy import Situation
from router.query import Query
from router.record import RouteResult
from router.spend import Hold, Spend
from sllm.settings import RouterSettings

log = structlog.get_logger("router.shadow")

# The feedback source of a shadow label in the outcome log.
SHADOW_SOURCE = "shadow"


class ShadowExplorer:
    def __init__(
        self,
        settings: RouterSettings,
        *,
        cloud: CloudClient | None,
        outcomes: OutcomeLog,
        spend: Spend,
        judge: Judge | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.probability = settings.shadow_probability
        self._max_in_flight = settings.shadow_max_in_flight
        self._timeout_s = settings.shadow_timeout_s
        self._cloud = cloud
        self._outcomes = outcomes
        self._spend = spend
        self._judge = judge or Judge()
        self._draw = draw
        self._in_flight: set[asyncio.Task[None]] = set()

    def consider(self, query: Query, result: RouteResult, situation: Situation) -> bool:
        """Starts a shadow call for `result` when it was answered at the edge, the draw
        picks it and the cloud may take this query now; True when one was started."""
        if self.probability <= 0 or self._cloud is None or result.route != "EDGE":
            return False
        if self._draw() >= self.probability:
            return False
        now = dataclasses.replace(
            situation,
            # The shadow call has no latency budget: nobody waits for it.
            remaining_ms=math.inf,
            tenant_remaining_usd=self._spend.remaining(query.tenant),
            cloud_available=self._cloud.breaker_state == "closed",
        )
        blocker = decide.cloud_blocker(query, now)
        if blocker is not None:
            log.debug("shadow.not_allowed", why=blocker)
            return False
        if len(self._in_flight) >= self._max_in_flight:
            metrics.SHADOW_CALLS.labels("busy").inc()
            log.info("shadow.busy", in_flight=len(self._in_flight))
            return False
        task = asyncio.create_task(
            self._explore(self._cloud, query, result, situation.est_cloud_cost_usd)
        )
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return True

    async def _explore(
        self, cloud: CloudClient, query: Query, result: RouteResult, estimate_usd: float
    ) -> None:
        hold = await self._spend.hold(query.tenant, estimate_usd)
        if hold.remaining_usd is not None and hold.key is None:
            metrics.SHADOW_CALLS.labels("over_budget").inc()
            log.info("shadow.over_budget", tenant=query.tenant)
            return
        try:
            outcome = await self._label(cloud, query, result, hold)
        except CloudError as error:
            outcome = "failed"
            log.warning("shadow.cloud_failed", error=str(error), endpoint=error.endpoint)
        except OutcomeLogFull as error:
            outcome = "failed"
            log.warning("shadow.not_logged", error=str(error))
        except Exception as error:  # a background task: whatever it is, log it and go on
            outcome = "failed"
            log.exception("shadow.failed", error=repr(error))
        metrics.SHADOW_CALLS.labels(outcome).inc()

    async def _label(
        self, cloud: CloudClient, query: Query, result: RouteResult, hold: Hold
    ) -> str:
        cost_usd = 0.0
        try:
            reply = await cloud.complete(
                query.messages,
                max_tokens=query.max_tokens,
                deadline=time.monotonic() + self._timeout_s,
            )
            cost_usd = reply.cost_usd
        finally:
            await self._spend.settle(hold, cost_usd)
        metrics.COST.labels(query.tenant).inc(reply.cost_usd)
        score = await self._judge.score(
            question=query.text,
            answer=result.text,
            reference=reply.text,
            answer_format=query.answer_format,
            reference_is_gold=False,
        )
        if score is None:
            log.info("shadow.undecided", cloud_chars=len(reply.text))
            return "undecided"
        weight = 1.0 / self.probability
        if not await self._outcomes.feedback(
            result.request_id, score, SHADOW_SOURCE, weight=weight, cloud_text=reply.text
        ):
            log.warning("shadow.row_missing", reason="the request's row was not logged")
            return "failed"
        log.info("shadow.labelled", edge_score=score, weight=weight, cost_usd=reply.cost_usd)
        return "labelled"

    async def drain(self) -> None:
        """Waits for the shadow calls in flight (tests; a clean shutdown)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def aclose(self) -> None:
        """Abandons the shadow calls in flight: their labels are not worth a slow stop."""
        for task in list(self._in_flight):
            task.cancel()
        await self.drain()
