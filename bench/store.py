"""`sllm bench store`: the outcome log's write rate, SQLite against PostgreSQL.

Rows go through the router's own writer (router/outcomes.py: queue, batches of up to 256
in one transaction), as fast as the writer takes them: the figure is the ceiling of what
a router can log, in rows per second from the first row queued to the last committed.
A fleet is measured too: several writers (routers) into one PostgreSQL store at once.

Then what the router's answers pay for being logged: a request is answered once its row
is committed (docs/reliability.md), so the time from queueing a row to its commit is
added to every answer; measured with 1 and with 16 requests at once (the rows of requests
finishing together share one transaction).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from bench.results import headline
from router.outcomes import LoggedRequest, OutcomeLog
from router.record import DecisionRecord, RouteResult
from router.store import shown
from sllm.chat import ChatMessage
from sllm.cli import SubParsers
from sllm.records import BudgetView

HELP = (
    "the outcome log's write rate (rows/s) on SQLite and on a PostgreSQL store, one writer "
    "and several at once (a fleet)"
)
QUESTION = "What is the capital of France? Answer in one word."


def cloud_answered(request_id: str) -> LoggedRequest:
    """A cloud-answered request as the router logs it (about 1 kB of row)."""
    budget = BudgetView(1000.0, "request", None, None, 100.0, 900.0, 700.0, 0.0001)
    record = DecisionRecord(0.3, 0.5, 0.4, budget, "bench", 32, reason="CLOUD: a reason.")
    result = RouteResult(
        request_id,
        "Paris",
        "Paris",
        "CLOUD",
        None,
        False,
        record,
        12,
        1,
        None,
        "Paris",
        "bench-cloud",
    )
    return LoggedRequest(
        QUESTION, [ChatMessage("user", QUESTION)], "FREE_TEXT", "bench", "", result
    )


def _write(where: str | Path, rows: int, writers: int) -> float:
    """Rows per second of `writers` logs writing `rows` each into one store at once."""
    logs = [OutcomeLog(where, store_prompts=False, queue_size=rows) for _ in range(writers)]
    batches = [
        [cloud_answered(f"{w}-{n}-{time.time_ns()}") for n in range(rows)] for w in range(writers)
    ]

    def fill(log: OutcomeLog, batch: list[LoggedRequest]) -> None:
        for entry in batch:
            log.record(entry)
        log.flush(timeout_s=600)

    threads = [threading.Thread(target=fill, args=pair) for pair in zip(logs, batches, strict=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for log in logs:
        log.close()
    return rows * writers / elapsed


def _commit_waits(where: str | Path, concurrent: int, requests: int) -> list[float]:
    """Milliseconds from queueing each row to its commit, `concurrent` requests at once."""
    log = OutcomeLog(where, store_prompts=False, queue_size=10_000)
    waits: list[float] = []

    async def request(worker: int) -> None:
        for n in range(requests // concurrent):
            started = time.perf_counter()
            written = log.record(cloud_answered(f"wait-{worker}-{n}-{time.time_ns()}"))
            await log.committed(written, timeout_s=10.0)
            waits.append((time.perf_counter() - started) * 1000.0)

    async def run() -> None:
        await asyncio.gather(*(request(w) for w in range(concurrent)))

    asyncio.run(run())
    log.close()
    return waits


def _print_commit_waits(cases: list[tuple[str, str | Path, int]]) -> None:
    print("an answer's wait for its row's commit (ms), 2,000 requests")
    for name, where, _ in cases:
        if not name.endswith(", 1 writer"):
            continue
        for concurrent in (1, 16):
            waits = sorted(_commit_waits(where, concurrent, 2_000))
            p50, p99 = waits[len(waits) // 2], waits[int(len(waits) * 0.99)]
            store = name.removesuffix(", 1 writer")
            print(f"  {store:<10} {concurrent:>2} at once  p50 {p50:6.2f}  p99 {p99:6.2f}")


def _run(args: argparse.Namespace) -> int:
    print(f"outcome log write rate: {args.rows} rows per writer, best of {args.repeats}")
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="sllm-bench-store-") as scratch:
        cases: list[tuple[str, str | Path, int]] = [
            ("sqlite, 1 writer", Path(scratch) / "log.sqlite3", 1)
        ]
        if args.postgres:
            cases += [
                (f"postgresql, {w} writer{'s' if w > 1 else ''}", args.postgres, w)
                for w in sorted({1, args.writers})
            ]
        for name, where, writers in cases:
            figures[name] = max(_write(where, args.rows, writers) for _ in range(args.repeats))
            print(f"  {name:<24} {figures[name]:>9,.0f} rows/s")
        _print_commit_waits(cases)
    sqlite = figures["sqlite, 1 writer"]
    for name, rate in figures.items():
        if name.startswith("postgresql"):
            print(f"  {name} / sqlite: {rate / sqlite:.2f}")
    if args.postgres:
        print(f"  (postgresql: {shown(args.postgres)})")
    # The headline: the rates, and PostgreSQL's against SQLite's in the same run.
    rates = {"sqlite_rows_per_s": sqlite}
    for name, _, writers in cases[1:]:
        rates[f"postgres_{writers}w_rows_per_s"] = figures[name]
        rates[f"postgres_{writers}w_over_sqlite"] = figures[name] / sqlite
    print(headline(rates))
    return 0


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("store", help=HELP, description=HELP)
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="a PostgreSQL database to write to (rows are added to its outcome log); "
        "without it, SQLite alone",
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows per writer")
    parser.add_argument("--writers", type=int, default=2, help="routers writing at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.set_defaults(handler=_run)
