"""Requests one at a time through one router, each question with each budget in turn
(so that every budget sees the same load), after its edge minimum; figures per budget."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
from tqdm import tqdm

from bench.deadlines.plot import plot
from bench.replay.process import start_replay_cloud
from bench.results import headline, write_json
from router.learning.datasets import Question, sample
from router.process import start_router
from sllm.answers import answers_match
from sllm.settings import IN_PROCESS
from sllm.v1 import common_pb2, router_pb2, router_pb2_grpc

BUDGETS_MS = (300, 1_000, 3_000)
TASKS = ("gsm8k", "boolq", "nq_open")
QUESTIONS, QUICK_QUESTIONS = 60, 15
MAX_TOKENS = 128
REPLAY_LATENCY = ("--ttft-ms", "400", "--ms-per-token", "30", "--seed", "0")
TARGET_WITHIN = 0.99
# Long enough to see how late an answer is, rather than the client giving up.
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    question: str
    task: str
    budget_ms: int
    edge_min_ms: float
    wall_ms: float
    status: str  # OK, or the gRPC status the router answered
    route: str
    score: float
    # Why the router refused, when it did.
    detail: str = ""
    # The router's estimate of the edge's time for a 1-token answer.
    est_edge_min_ms: float = 0.0

    @property
    def within(self) -> bool:
        return self.status == "OK" and self.wall_ms <= self.budget_ms

    @property
    def eligible(self) -> bool:
        """The budget exceeds the edge's minimum for this request."""
        return self.budget_ms > self.edge_min_ms


def _request(
    question: Question, hint: int, max_tokens: int, budget_ms: int | None
) -> router_pb2.RouteRequest:
    request = router_pb2.RouteRequest(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=question.prompt)],
        max_tokens=max_tokens,
        route_hint=hint,  # type: ignore[arg-type]
        answer_format=common_pb2.AnswerFormat.Value(
            f"ANSWER_FORMAT_{question.answer_format.value}"
        ),
        tenant="bench-deadlines",
    )
    if budget_ms is not None:
        request.latency_budget_ms = budget_ms
    return request


async def _ask(
    stub: router_pb2_grpc.RouterAsyncStub, question: Question, budget_ms: int
) -> Outcome:
    """The question with that budget; its edge minimum is filled in later."""
    started = time.perf_counter()
    try:
        response = await stub.Generate(
            _request(question, router_pb2.ROUTE_HINT_AUTO, MAX_TOKENS, budget_ms),
            timeout=CALL_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as error:
        wall_ms = (time.perf_counter() - started) * 1000.0
        return Outcome(
            question.id,
            question.task,
            budget_ms,
            0.0,
            wall_ms,
            error.code().name,
            "NONE",
            0.0,
            error.details() or "",
        )
    wall_ms = (time.perf_counter() - started) * 1000.0
    right = answers_match(response.final_answer or None, question.gold, question.answer_format)
    route = router_pb2.Route.Name(response.route).removeprefix("ROUTE_")
    return Outcome(question.id, question.task, budget_ms, 0.0, wall_ms, "OK", route, float(right))


async def _edge_min_ms(
    stub: router_pb2_grpc.RouterAsyncStub, question: Question
) -> tuple[float, float]:
    """A 1-token edge answer to the question, no budget: the least any budget must hold;
    and the router's own estimate of it (the edge's, without the router's overheads)."""
    started = time.perf_counter()
    response = await stub.Generate(
        _request(question, router_pb2.ROUTE_HINT_EDGE_ONLY, 1, None), timeout=CALL_TIMEOUT_S
    )
    return (
        (time.perf_counter() - started) * 1000.0,
        response.decision.budget.est_edge_step_by_step_ms,
    )


async def measure(target: str, questions: Sequence[Question]) -> list[Outcome]:
    """Each question's edge minimum, then its request with each budget; the slots of one
    round are different questions, since the edge reuses the previous prompt's prefill
    (its KV cache) and a question asked twice in a row would be answered warm."""
    slots: tuple[int | None, ...] = (None, *BUDGETS_MS)
    step = max(1, len(questions) // len(slots))
    edge_min: dict[str, tuple[float, float]] = {}
    outcomes: list[Outcome] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = router_pb2_grpc.RouterStub(channel)
        # Warms the model, the scorer and the estimators as earlier traffic would have.
        for question in questions[-3:]:
            await _edge_min_ms(stub, question)
        for round_ in tqdm(range(len(questions)), desc="deadlines", unit="round"):
            for slot, budget in enumerate(slots):
                question = questions[(round_ + slot * step) % len(questions)]
                if budget is None:
                    edge_min[question.id] = await _edge_min_ms(stub, question)
                else:
                    outcomes.append(await _ask(stub, question, budget))
    return [
        dataclasses.replace(
            o, edge_min_ms=edge_min[o.question][0], est_edge_min_ms=edge_min[o.question][1]
        )
        for o in outcomes
    ]


@contextlib.contextmanager
def _system(scratch: Path) -> Iterator[str]:
    """The replay cloud and a router with the edge in its process; the router's target."""
    with contextlib.ExitStack() as stack:
        cloud = start_replay_cloud(*REPLAY_LATENCY)
        stack.callback(cloud.stop)
        router = start_router(
            "--edge",
            IN_PROCESS,
            env={
                "SLLM_CLOUD__BASE_URL": cloud.base_url,
                "SLLM_CLOUD__MODEL": "replay",
                "SLLM_CLOUD__API_KEY": "unused",
                "SLLM_ROUTER__OUTCOME_DB": str(scratch / "outcomes.sqlite3"),
                "SLLM_ROUTER__METRICS_PORT": "0",
            },
            log_path=scratch / "router.log",
        )
        stack.callback(router.stop)
        yield router.target


def per_budget(outcomes: Sequence[Outcome]) -> dict[int, dict[str, float]]:
    figures: dict[int, dict[str, float]] = {}
    for budget in BUDGETS_MS:
        mine = [o for o in outcomes if o.budget_ms == budget]
        eligible = [o for o in mine if o.eligible]
        answered = [o for o in mine if o.status == "OK"]
        routes = Counter(o.route for o in mine)
        late = [o.wall_ms - budget for o in answered if not o.within]
        figures[budget] = {
            "requests": len(mine),
            "eligible": len(eligible),
            "within": sum(o.within for o in mine) / len(mine),
            "within_eligible": (
                sum(o.within for o in eligible) / len(eligible) if eligible else float("nan")
            ),
            "accuracy": statistics.fmean(o.score for o in mine),
            "refused": sum(o.status != "OK" for o in mine) / len(mine),
            "max_late_ms": max(late, default=0.0),
            "p50_ms": statistics.median(o.wall_ms for o in mine),
            **{
                f"route_{route.lower()}": routes[route] / len(mine)
                for route in ("EDGE", "CLOUD", "EDGE_THEN_CLOUD", "EDGE_FALLBACK", "NONE")
            },
        }
    return figures


def _print(figures: dict[int, dict[str, float]], edge_min: Sequence[float]) -> None:
    print(
        f"edge minimum per request (1-token edge answer through the router): p50 "
        f"{statistics.median(edge_min):.0f} ms, max {max(edge_min):.0f} ms"
    )
    print(
        f"{'budget':>8}{'within':>8}{'within (eligible)':>19}{'accuracy':>10}"
        f"{'refused':>9}{'max late':>10}  routes"
    )
    for budget, f in figures.items():
        routes = ", ".join(
            f"{key[6:].upper()} {value:.2f}"
            for key, value in f.items()
            if key.startswith("route_") and value
        )
        print(
            f"{budget:>6}ms{f['within']:>8.3f}{f['within_eligible']:>11.3f} of "
            f"{int(f['eligible']):>3}{f['accuracy']:>10.3f}{f['refused']:>9.3f}"
            f"{f['max_late_ms']:>8.0f}ms  {routes}"
        )
    for budget, f in figures.items():
        verdict = "met" if f["within_eligible"] >= TARGET_WITHIN else "MISSED"
        print(f"target within budget (eligible) >= {TARGET_WITHIN} at {budget} ms: {verdict}")


def run(*, quick: bool, questions: int | None = None, out: Path) -> int:
    total = questions or (QUICK_QUESTIONS if quick else QUESTIONS)
    chosen = sample(list(TASKS), -(-total // len(TASKS)), seed=0)[:total]
    with tempfile.TemporaryDirectory(prefix="sllm-bench-deadlines-") as scratch:
        try:
            with _system(Path(scratch)) as target:
                outcomes = asyncio.run(measure(target, chosen))
        except RuntimeError as failed:
            print(f"sllm bench deadlines: {failed}", file=sys.stderr)
            return 1
    figures = per_budget(outcomes)
    edge_min = sorted({o.question: o.edge_min_ms for o in outcomes}.values())
    _print(figures, edge_min)
    write_json(
        out,
        "deadlines",
        {
            "budgets": {str(budget): f for budget, f in figures.items()},
            "edge_min_ms": edge_min,
            "requests": [asdict(o) for o in outcomes],
        },
    )
    plot(out / "deadlines.png", figures, outcomes)
    print(
        headline(
            {
                f"{key}_{budget}": value
                for budget, f in figures.items()
                for key, value in f.items()
                if key in ("within", "within_eligible", "accuracy")
            }
            | {"questions": len(chosen)}
        )
    )
    return 0
