"""`sllm bench`'s plumbing, with stand-in benchmarks that print a headline at once: each
one's log, JSON and headline, the suite's JSON, and a last line of key=value pairs; and
the real suite's arguments parse, each size. No timings are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.results import parse_headline
from bench.suite import run as suite
from bench.suite.run import SUITE, Benchmark, Size
from sllm.cli import build_parser, main


def _stand_in(name: str, code: str) -> Benchmark:
    return Benchmark(name, quick=("--quick",), full=(), program=("-c", code))


STAND_INS = (
    _stand_in("first", "print('working'); print('ratio=0.98 questions=3')"),
    _stand_in("second", "import sys; print('p50_ms=1.5'); sys.exit(0)"),
)


def test_the_suite_gathers_every_headline_on_its_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(suite, "SUITE", STAND_INS)
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert parse_headline(last) == {
        "first.ratio": "0.98",
        "first.questions": "3",
        "second.p50_ms": "1.5",
        "failed": "0",
    }
    report = json.loads((tmp_path / "suite.json").read_text())
    assert report["size"] == "quick"
    assert report["machine"]["cores"] >= 1
    assert "llama_cpp_python" in report["machine"]["packages"]
    assert json.loads((tmp_path / "first.json").read_text())["headline"]["ratio"] == "0.98"
    assert "working" in (tmp_path / "first.log").read_text()


def test_a_benchmark_that_fails_or_ends_without_a_headline_is_counted_as_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = (
        _stand_in("crashes", "import sys; sys.exit(3)"),
        _stand_in("mute", "print('no headline here')"),
        *STAND_INS[:1],
    )
    assert suite.run(size="full", out=tmp_path, suite=broken) == 1
    last = parse_headline(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == {"first.ratio": "0.98", "first.questions": "3", "failed": "2"}
    assert json.loads((tmp_path / "suite.json").read_text())["failed"] == ["crashes", "mute"]


@pytest.mark.parametrize("size", ["quick", "full"])
def test_the_real_suite_s_arguments_parse(size: Size, tmp_path: Path) -> None:
    parser = build_parser()
    for benchmark in SUITE:
        argv = benchmark.command(size, tmp_path)[len(benchmark.program) :]
        assert parser.parse_args(argv).handler is not None


def test_sllm_bench_all_is_the_suite() -> None:
    parser = build_parser()
    for argv in (["bench"], ["bench", "all", "--quick"]):
        assert parser.parse_args(argv).handler.__name__ == "_suite"
