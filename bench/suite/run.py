"""Runs the benchmarks one after another (they measure; side by side they would measure
each other), each as `sllm bench NAME ...` in a child process whose output goes to
NAME.log in the output directory; gathers each one's last line (its headline) into
suite.json, with the machine and its load, and into the suite's own last line."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from bench.results import parse_headline, write_json
from bench.suite.machine import load, machine
from sllm import children

Size = Literal["quick", "full"]


@dataclass(frozen=True)
class Benchmark:
    name: str
    # Arguments after the program, for each size.
    quick: tuple[str, ...]
    full: tuple[str, ...]
    # It writes NAME.json and its plots into the directory `--out` names; else the suite
    # writes NAME.json from its headline.
    takes_out: bool = False
    program: tuple[str, ...] = ("-m", "sllm", "bench")

    def command(self, size: Size, out: Path) -> list[str]:
        args = self.quick if size == "quick" else self.full
        return [
            sys.executable,
            *self.program,
            self.name,
            *args,
            *(("--out", str(out)) if self.takes_out else ()),
        ]


# --quick: under 5 minutes in all on a quiet 2-core machine; full: under 60.
SUITE = (
    Benchmark("edge", ("--questions", "6", "--pairs", "2", "--max-tokens", "64"), ()),
    Benchmark("router", ("--quick",), ()),
    Benchmark("http", ("--quick",), ()),
    Benchmark("capacity", ("--quick",), (), takes_out=True),
    Benchmark("memory", ("--quick",), (), takes_out=True),
    Benchmark("store", ("--rows", "2000", "--repeats", "1"), ()),
    Benchmark("deadlines", ("--questions", "12"), (), takes_out=True),
    Benchmark("live", ("--quick",), (), takes_out=True),
)


@dataclass
class Ran:
    benchmark: Benchmark
    exit_code: int
    seconds: float
    headline: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 1),
            "headline": self.headline,
        }


def _last_line(log: Path) -> str:
    lines = [
        line
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if line.strip()
    ]
    return lines[-1] if lines else ""


def _run_one(benchmark: Benchmark, size: Size, out: Path) -> Ran:
    log, errors = out / f"{benchmark.name}.log", out / f"{benchmark.name}.stderr.log"
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as stdout, errors.open("w", encoding="utf-8") as stderr:
        exit_code = children.popen(
            benchmark.command(size, out), stdout=stdout, stderr=stderr
        ).wait()
    seconds = time.monotonic() - started
    try:
        headline = parse_headline(_last_line(log)) if exit_code == 0 else {}
    except ValueError:
        headline, exit_code = {}, exit_code or 1
    return Ran(benchmark, exit_code, seconds, headline)


def run(
    *, size: Size, out: Path, only: Sequence[str] = (), suite: Sequence[Benchmark] | None = None
) -> int:
    chosen = [b for b in suite or SUITE if not only or b.name in only]
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"size": size, "machine": machine(), "benchmarks": {}}
    gathered: dict[str, str] = {}
    progress = tqdm(chosen, desc="sllm bench", unit="benchmark")
    for benchmark in progress:
        progress.set_postfix_str(benchmark.name)
        ran = _run_one(benchmark, size, out)
        report["benchmarks"][benchmark.name] = ran.as_dict()
        if not benchmark.takes_out:
            write_json(out, benchmark.name, ran.as_dict())
        verdict = (
            " ".join(f"{k}={v}" for k, v in ran.headline.items())
            if ran.exit_code == 0
            else f"FAILED (exit {ran.exit_code}): see {out / benchmark.name}.log"
        )
        tqdm.write(f"{benchmark.name} ({ran.seconds:.0f} s): {verdict}")
        gathered |= {f"{benchmark.name}.{key}": value for key, value in ran.headline.items()}
    failed = [name for name, ran in report["benchmarks"].items() if ran["exit_code"] != 0]
    report["load_after"] = load()
    report["failed"] = failed
    write_json(out, "suite", report)
    print(
        f"machine: {report['machine']['cores']} cores, {report['machine']['cpu']}; load "
        f"{report['machine']['load']['1m']:.1f} before, {report['load_after']['1m']:.1f} "
        f"after; figures in {out}"
    )
    print(" ".join([*(f"{k}={v}" for k, v in gathered.items()), f"failed={len(failed)}"]))
    return 1 if failed else 0
