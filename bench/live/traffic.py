"""Questions sent to the router over gRPC, each followed by Feedback from its gold answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from tqdm import tqdm

from router.learning.datasets import Question
from sllm.answers import answers_match
from sllm.v1 import common_pb2, router_pb2, router_pb2_grpc

# Enough for GPT-4's longest recorded GSM8K answers (9 of 989 pass 256 tokens); the edge's
# DIRECT answers are capped lower by the router (router.direct_max_tokens).
MAX_TOKENS = 384
CALL_TIMEOUT_S = 180.0
TENANT = "bench-live"


@dataclass(frozen=True)
class Answered:
    question: Question
    request_id: str
    route: str
    score: float
    total_ms: float


def _request(question: Question, hint: int) -> router_pb2.RouteRequest:
    return router_pb2.RouteRequest(
        messages=[common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=question.prompt)],
        max_tokens=MAX_TOKENS,
        route_hint=hint,  # type: ignore[arg-type]
        answer_format=common_pb2.AnswerFormat.Value(
            f"ANSWER_FORMAT_{question.answer_format.value}"
        ),
        tenant=TENANT,
        client_request_id=question.id,
    )


async def ask(stub: router_pb2_grpc.RouterAsyncStub, question: Question, hint: int) -> Answered:
    """One Generate call, then Feedback: 1.0 when the returned answer matches the gold one."""
    started = time.perf_counter()
    response = await stub.Generate(_request(question, hint), timeout=CALL_TIMEOUT_S)
    total_ms = (time.perf_counter() - started) * 1000.0
    right = answers_match(response.final_answer or None, question.gold, question.answer_format)
    await stub.Feedback(
        router_pb2.FeedbackRequest(
            request_id=response.request_id, score=float(right), source="gold"
        ),
        timeout=CALL_TIMEOUT_S,
    )
    return Answered(
        question,
        response.request_id,
        router_pb2.Route.Name(response.route).removeprefix("ROUTE_"),
        float(right),
        total_ms,
    )


@dataclass
class Phase:
    answered: list[Answered]
    failures: list[str]


async def _ask_all(
    stub: router_pb2_grpc.RouterAsyncStub,
    questions: Sequence[Question],
    hint: int,
    concurrency: int,
    progress: tqdm[None],
) -> Phase:
    gate = asyncio.Semaphore(concurrency)
    phase = Phase([], [])

    async def one(question: Question) -> None:
        async with gate:
            try:
                phase.answered.append(await ask(stub, question, hint))
            except grpc.aio.AioRpcError as error:
                phase.failures.append(f"{question.id}: {error.code().name} {error.details()}")
            progress.update()

    await asyncio.gather(*(one(q) for q in questions))
    order = {q.id: i for i, q in enumerate(questions)}
    phase.answered.sort(key=lambda a: order[a.question.id])
    return phase


async def both_tiers(target: str, questions: Sequence[Question]) -> tuple[Phase, Phase]:
    """Phase 1: every question to the edge (EDGE_ONLY, one at a time, as the edge serves
    them) and, alongside, to the cloud (CLOUD_ONLY, a few at once: its latency is waiting)."""
    with tqdm(total=2 * len(questions), desc="phase 1: edge + cloud", unit="call") as progress:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            edge, cloud = await asyncio.gather(
                _ask_all(stub, questions, router_pb2.ROUTE_HINT_EDGE_ONLY, 1, progress),
                _ask_all(stub, questions, router_pb2.ROUTE_HINT_CLOUD_ONLY, 6, progress),
            )
    return edge, cloud


async def auto_routed(target: str, questions: Sequence[Question]) -> Phase:
    """Phase 2: the questions as ordinary traffic, the router choosing (AUTO)."""
    with tqdm(total=len(questions), desc="phase 2: AUTO", unit="q") as progress:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = router_pb2_grpc.RouterStub(channel)
            return await _ask_all(stub, questions, router_pb2.ROUTE_HINT_AUTO, 4, progress)


async def active_policy_version(target: str) -> str:
    async with grpc.aio.insecure_channel(target) as channel:
        info = await router_pb2_grpc.RouterStub(channel).GetPolicy(
            router_pb2.GetPolicyRequest(), timeout=10
        )
    return info.version
