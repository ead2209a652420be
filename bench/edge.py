"""`sllm bench edge`: the edge worker against baselines measured in the same run.

1. Throughput: tokens/s of a Generate call through a real worker process (gRPC, streaming,
   confidence per token) against a bare llama-cpp-python greedy loop on the same model,
   prompt and token count, in this process. Runs alternate so that both see the same load.
2. Early exit: questions from ../shared/data (GSM8K test, SVAMP, StrategyQA) answered step
   by step with early exit off, then on; tokens generated and answer accuracy.

The last line prints the headline figures as key=value pairs.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from llama_cpp import Llama

from edge_worker.portability import extra_buffers_enabled, llama_class_extra_buffers
from edge_worker.process import start_edge_worker
from edge_worker.validation import prepare
from edge_worker.worker import open_model
from sllm.answers import AnswerFormat, answers_match
from sllm.models import bundled_model_path
from sllm.settings import get_settings
from sllm.v1 import common_pb2, edge_pb2, edge_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
STORY = "Write a very long story about a dragon who guards a mountain village."
_FORMATS = {
    AnswerFormat.NUMBER: common_pb2.ANSWER_FORMAT_NUMBER,
    AnswerFormat.YES_NO: common_pb2.ANSWER_FORMAT_YES_NO,
}


@dataclass(frozen=True)
class Question:
    source: str
    text: str
    gold: str
    fmt: AnswerFormat


def _gsm8k() -> list[Question]:
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").open()]
    return [
        Question(
            "gsm8k", row["question"], row["answer"].split("####")[-1].strip(), AnswerFormat.NUMBER
        )
        for row in rows
    ]


def _svamp() -> list[Question]:
    rows = json.loads((DATA / "svamp" / "SVAMP.json").read_text())
    return [
        Question(
            "svamp", f"{row['Body']} {row['Question']}", str(row["Answer"]), AnswerFormat.NUMBER
        )
        for row in rows
    ]


def _strategyqa() -> list[Question]:
    rows = json.loads((DATA / "strategyqa" / "train.json").read_text())
    return [
        Question(
            "strategyqa", row["question"], "yes" if row["answer"] else "no", AnswerFormat.YES_NO
        )
        for row in rows
    ]


def load_questions(count: int, seed: int = 0) -> list[Question]:
    """`count` questions, a third from each set, sampled reproducibly."""
    sources = [_gsm8k(), _svamp(), _strategyqa()]
    rng = random.Random(seed)
    picked: list[Question] = []
    for index, rows in enumerate(sources):
        share = count // len(sources) + (1 if index < count % len(sources) else 0)
        picked.extend(rng.sample(rows, share))
    return picked


def _request(text: str, **fields: object) -> edge_pb2.EdgeGenerateRequest:
    message = common_pb2.ChatMessage(role=common_pb2.ROLE_USER, content=text)
    return edge_pb2.EdgeGenerateRequest(messages=[message], **fields)  # type: ignore[arg-type]


def _summary(
    stub: edge_pb2_grpc.EdgeWorkerStub, request: edge_pb2.EdgeGenerateRequest
) -> edge_pb2.EdgeSummary:
    summary: edge_pb2.EdgeSummary | None = None
    for event in stub.Generate(request, timeout=600):
        if event.HasField("summary"):
            summary = event.summary
    assert summary is not None, "the worker sent no summary"
    return summary


@contextmanager
def worker() -> Iterator[tuple[edge_pb2_grpc.EdgeWorkerStub, int]]:
    """A worker process: its stub and its pid."""
    process = start_edge_worker(cwd=ROOT)
    try:
        with grpc.insecure_channel(process.target) as channel:
            yield edge_pb2_grpc.EdgeWorkerStub(channel), process.process.pid
    finally:
        process.stop()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Rate:
    """One generation's tokens per second, of wall time and of the process's CPU time."""

    wall: float
    cpu: float


@dataclass(frozen=True)
class Throughput:
    """Paired runs: each worker run with a bare run right before or after it (the order
    alternates), so that both of a pair see the same load; ratios are per pair."""

    worker: list[Rate]
    bare: list[Rate]
    tokens: int

    @property
    def worker_tokens_per_s(self) -> float:
        return statistics.median(r.wall for r in self.worker)

    @property
    def bare_tokens_per_s(self) -> float:
        return statistics.median(r.wall for r in self.bare)

    @property
    def ratio(self) -> float:
        """Median over pairs of worker / bare tokens per second."""
        pairs = zip(self.worker, self.bare, strict=True)
        return statistics.median(w.wall / b.wall for w, b in pairs)

    @property
    def cpu_ratio(self) -> float:
        """The same per CPU second: steadier than wall time on a machine others share."""
        pairs = zip(self.worker, self.bare, strict=True)
        return statistics.median(w.cpu / b.cpu for w, b in pairs)


def measure_throughput(
    stub: edge_pb2_grpc.EdgeWorkerStub, pid: int, max_tokens: int, repeats: int
) -> Throughput:
    settings = get_settings().edge
    path = settings.model_path or bundled_model_path()
    request = _request(STORY, max_tokens=max_tokens, early_exit=edge_pb2.EarlyExit(disabled=True))
    # The bare loop gets exactly the worker's prompt tokens (chat template + instruction).
    model = open_model(settings)
    prompt = prepare(request, model, settings).prompt_tokens
    # Like the worker: the same threads and extra buffers; both keep the prompt cached
    # between repeats.
    with llama_class_extra_buffers(extra_buffers_enabled(settings.extra_buffers)):
        bare = Llama(
            str(path),
            n_ctx=settings.n_ctx,
            n_threads=model.n_threads,
            n_threads_batch=model.n_threads_batch,
            verbose=False,
        )
    tokens = _summary(stub, request).completion_tokens  # warm-up, and the count to match

    def through_worker() -> Rate:
        started, cpu_started = time.perf_counter(), _cpu_seconds(pid)
        count = _summary(stub, request).completion_tokens
        return Rate(
            count / (time.perf_counter() - started),
            count / max(_cpu_seconds(pid) - cpu_started, 1e-3),
        )

    def bare_loop() -> Rate:
        started, cpu_started = time.perf_counter(), time.process_time()
        # Greedy, like the worker: the same tokens, without confidence, gRPC or early exit.
        for count, _token in enumerate(bare.generate(prompt, temp=0.0, top_k=1), start=1):
            if count >= tokens:
                break
        return Rate(
            tokens / (time.perf_counter() - started),
            tokens / max(time.process_time() - cpu_started, 1e-3),
        )

    bare_loop()  # warm-up
    worker: list[Rate] = []
    baseline: list[Rate] = []
    for repeat in range(repeats):
        if repeat % 2:
            baseline.append(bare_loop())
            worker.append(through_worker())
        else:
            worker.append(through_worker())
            baseline.append(bare_loop())
    return Throughput(worker, baseline, tokens)


@dataclass(frozen=True)
class Answered:
    question: Question
    tokens: int
    correct: bool
    exit_reason: str


def answer_request(
    question: Question, *, early_exit: bool, max_tokens: int
) -> edge_pb2.EdgeGenerateRequest:
    """The benchmark asks every question step by step, where early exit has room to act."""
    return _request(
        question.text,
        reasoning_mode=common_pb2.REASONING_MODE_STEP_BY_STEP,
        answer_format=_FORMATS[question.fmt],
        max_tokens=max_tokens,
        early_exit=edge_pb2.EarlyExit(disabled=not early_exit),
    )


def answer_all(
    stub: edge_pb2_grpc.EdgeWorkerStub,
    questions: list[Question],
    *,
    early_exit: bool,
    max_tokens: int,
) -> list[Answered]:
    answered = []
    for number, question in enumerate(questions, start=1):
        if number % 20 == 0:
            print(
                f"  early exit {'on' if early_exit else 'off'}: {number}/{len(questions)}",
                flush=True,
            )
        request = answer_request(question, early_exit=early_exit, max_tokens=max_tokens)
        summary = _summary(stub, request)
        answer = summary.final_answer if summary.answer_found else None
        answered.append(
            Answered(
                question,
                summary.completion_tokens,
                answers_match(answer, question.gold, question.fmt),
                common_pb2.ExitReason.Name(summary.exit_reason).removeprefix("EXIT_REASON_"),
            )
        )
    return answered


def _accuracy(answered: list[Answered]) -> float:
    return sum(a.correct for a in answered) / len(answered)


def run(
    quick: bool,
    *,
    questions: int | None = None,
    pairs: int | None = None,
    max_tokens: int | None = None,
) -> int:
    """Sizes: --quick's, else the full run's; each can be set on its own (the suite's quick
    run takes fewer than --quick)."""
    count, tokens, repeats = (12, 128, 4) if quick else (200, 256, 20)
    count, max_tokens, repeats = questions or count, max_tokens or tokens, pairs or repeats
    drawn = load_questions(count)
    with worker() as (stub, pid):
        throughput = measure_throughput(stub, pid, max_tokens=max_tokens, repeats=repeats)
        print(
            f"throughput ({throughput.tokens} tokens, {repeats} pairs): worker "
            f"{throughput.worker_tokens_per_s:.1f} tok/s, bare llama-cpp-python "
            f"{throughput.bare_tokens_per_s:.1f} tok/s (medians); median ratio of pairs "
            f"{throughput.ratio:.3f}, per CPU second {throughput.cpu_ratio:.3f}",
            flush=True,
        )
        off = answer_all(stub, drawn, early_exit=False, max_tokens=max_tokens)
        on = answer_all(stub, drawn, early_exit=True, max_tokens=max_tokens)
    tokens_off = sum(a.tokens for a in off)
    tokens_on = sum(a.tokens for a in on)
    saving = 1 - tokens_on / tokens_off if tokens_off else 0.0
    print(f"early exit on {len(drawn)} questions (step by step, max_tokens={max_tokens}):")
    print(f"{'source':<12}{'n':>4}{'tokens off':>12}{'tokens on':>11}{'acc off':>9}{'acc on':>8}")
    for source in dict.fromkeys(q.source for q in drawn):
        part_off = [a for a in off if a.question.source == source]
        part_on = [a for a in on if a.question.source == source]
        print(
            f"{source:<12}{len(part_off):>4}{sum(a.tokens for a in part_off):>12}"
            f"{sum(a.tokens for a in part_on):>11}{_accuracy(part_off):>9.3f}"
            f"{_accuracy(part_on):>8.3f}"
        )
    print("exit reasons off:", dict(Counter(a.exit_reason for a in off)))
    print("exit reasons on: ", dict(Counter(a.exit_reason for a in on)))
    print(
        f"tokens_per_s_ratio={throughput.ratio:.3f} "
        f"tokens_per_cpu_s_ratio={throughput.cpu_ratio:.3f} "
        f"worker_tokens_per_s={throughput.worker_tokens_per_s:.1f} "
        f"bare_tokens_per_s={throughput.bare_tokens_per_s:.1f} "
        f"early_exit_token_saving={saving:.3f} "
        f"accuracy_off={_accuracy(off):.3f} accuracy_on={_accuracy(on):.3f} "
        f"accuracy_delta={_accuracy(on) - _accuracy(off):+.3f} questions={len(drawn)}"
    )
    return 0
