"""`sllm bench router-cpu`: the router's own CPU per request (bench/capacity/inprocess.py),
in rounds of fresh processes; with `--against DIR`, the same driver on another checkout
(its code first on PYTHONPATH) in every round too, the two in alternating order, so that
a change is judged by paired ratios measured side by side on a shared, noisy machine."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.capacity.suite import router_env
from bench.replay.process import start_replay_cloud
from bench.results import headline
from sllm import children

_DRIVER = Path(__file__).with_name("inprocess.py")


def _driver(
    code: Path, route: str, requests: int, tasks: int, env: dict[str, str], log: Path
) -> dict[str, float]:
    """This checkout's driver, run as a script so that every module it imports (the
    router's, and the instant edge's) comes from `code`."""
    environment = {**os.environ, **env}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(code), environment.get("PYTHONPATH")))
    )
    command = [sys.executable, str(_DRIVER), "--route", route]
    command += ["--requests", str(requests), "--tasks", str(tasks)]
    with log.open("w") as stderr:
        process = children.popen(
            command, env=environment, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        out, _ = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(f"the driver failed ({process.returncode}): see {log}")
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def run(*, route: str, requests: int, tasks: int, rounds: int, against: Path | None) -> int:
    cloud = start_replay_cloud("--fallback-answer", "Paris")
    here = Path(__file__).resolve().parents[2]
    try:
        with tempfile.TemporaryDirectory(prefix="sllm-router-cpu-") as scratch:
            mine: list[float] = []
            theirs: list[float] = []
            for number in range(rounds):
                order = [("this", here)]
                if against is not None:
                    order.append(("against", against))
                if number % 2:
                    order.reverse()
                figures: dict[str, float] = {}
                for name, code in order:
                    # The capacity benchmark's router, with an outcome log of its own.
                    env = router_env(cloud.base_url, Path(scratch)) | {
                        "SLLM_ROUTER__OUTCOME_DB": f"{scratch}/{name}-{number}.sqlite3"
                    }
                    log = Path(scratch) / f"{name}-{number}.log"
                    figures[name] = _driver(code, route, requests, tasks, env, log)["cpu_ms"]
                mine.append(figures["this"])
                line = f"round {number + 1}/{rounds}: this {figures['this']:.3f} ms"
                if "against" in figures:
                    theirs.append(figures["against"])
                    line += (
                        f", against {figures['against']:.3f} ms"
                        f" (ratio {figures['this'] / figures['against']:.3f})"
                    )
                print(line, flush=True)
    finally:
        cloud.stop()
    result: dict[str, float] = {"tasks": tasks, "cpu_ms": statistics.median(mine)}
    if theirs:
        result["against_cpu_ms"] = statistics.median(theirs)
        result["ratio"] = statistics.median(a / b for a, b in zip(mine, theirs, strict=True))
    print(f"route={route} {headline(result)}")
    return 0
