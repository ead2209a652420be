"""The async face of the model: a bounded queue in front of one model thread.

One model context serves one generation at a time: jobs run in a single-thread
executor. The queue bound is enforced on admission (QueueFull at once), and a job whose
caller left or whose deadline passed while it waited ends before touching the model.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from edge_worker.generation import Delta, GenerationResult, PreparedGeneration, generate
from edge_worker.metrics import EdgeMetrics
from edge_worker.options import option_tokens
from edge_worker.protocols import ServedModel
from sllm.answers import AnswerFormat

log = structlog.get_logger(__name__)


class QueueFull(Exception):
    """Every slot of the queue is taken."""


@dataclass(frozen=True, slots=True)
class Finished:
    result: GenerationResult
    queue_ms: float
    total_ms: float


class EdgeEngine:
    def __init__(
        self,
        model: ServedModel,
        *,
        queue_size: int,
        metrics: EdgeMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: what deadlines are read on (time.monotonic; a test's own clock)."""
        self.model = model
        self._clock = clock
        self.queue_size = queue_size
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-model")
        self._in_flight = 0
        # The deadline of the generation on the model thread, if one runs and has one.
        self._running_deadline: float | None = None
        # A pass over the vocabulary per format, once, rather than in a request's time.
        self._options = {
            fmt: option_tokens(model.n_vocab, model.token_bytes, fmt) for fmt in AnswerFormat
        }

    @property
    def in_flight(self) -> int:
        """Admitted generations, the running one included: 0 when every slot is free."""
        return self._in_flight

    @property
    def queue_depth(self) -> int:
        """Admitted generations not yet running (the running one is not counted)."""
        return max(0, self._in_flight - 1)

    def overrun_s(self) -> float:
        """How long the running generation is past its deadline (0 when none is). One
        that stops within a token of its deadline never overruns by more than a token's
        time: more is a model stuck in a call that does not return."""
        deadline = self._running_deadline
        return 0.0 if deadline is None else max(0.0, self._clock() - deadline)

    def _admit(self) -> None:
        if self._in_flight >= 1 + self.queue_size:
            raise QueueFull(
                f"the edge worker is busy: {self.queue_size} requests already wait; retry later"
            )
        self._in_flight += 1
        self._metrics.queue_depth.set(self.queue_depth)

    def _release(self) -> None:
        self._in_flight -= 1
        self._metrics.queue_depth.set(self.queue_depth)

    async def generate(self, job: PreparedGeneration) -> AsyncGenerator[Delta | Finished, None]:
        """Deltas as the model produces them, then one Finished. Closing the iterator early
        (the caller cancelled) stops the generation within one token."""
        self._admit()
        loop = asyncio.get_running_loop()
        admitted = time.perf_counter()
        deltas: asyncio.Queue[Delta | None] = asyncio.Queue()
        cancelled = threading.Event()
        started: list[float] = []

        def emit(delta: Delta) -> None:
            loop.call_soon_threadsafe(deltas.put_nowait, delta)

        def run() -> GenerationResult:
            started.append(time.perf_counter())
            self._running_deadline = job.deadline
            try:
                return generate(
                    self.model,
                    job,
                    emit,
                    cancelled,
                    clock=self._clock,
                    options=self._options[job.answer_format],
                )
            finally:
                self._running_deadline = None
                loop.call_soon_threadsafe(deltas.put_nowait, None)

        future = loop.run_in_executor(self._executor, run)
        future.add_done_callback(self._finished_job)
        try:
            while (delta := await deltas.get()) is not None:
                yield delta
            result = await future
            queue_ms = (started[0] - admitted) * 1000.0
            self._record(result)
            yield Finished(result, queue_ms, (time.perf_counter() - admitted) * 1000.0)
        finally:
            cancelled.set()

    def _finished_job(self, future: asyncio.Future[GenerationResult]) -> None:
        self._release()
        if not future.cancelled() and future.exception() is not None:
            log.error("edge.generation_failed", error=repr(future.exception()))

    def _record(self, result: GenerationResult) -> None:
        self._metrics.exit_reasons.labels(result.exit_reason.value).inc()
        self._metrics.tokens.labels("prompt").inc(result.prompt_tokens)
        self._metrics.tokens.labels("completion").inc(result.completion_tokens)
        if result.completion_tokens and result.decode_ms > 0:
            speed = result.completion_tokens / (result.decode_ms / 1000.0)
            self._metrics.decode_tokens_per_s.observe(speed)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
