"""llama.cpp's log lines go through structlog: with a JSON log, every line is JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge_worker.llama_log import LineJoiner
from edge_worker.portability import this_machine_choice
from edge_worker.process import start_edge_worker
from tests.edge.gguf_copies import without_chat_template
from tests.fixtures.edge import ROOT

DEBUG, INFO, WARN, CONT = 1, 2, 3, 5


def test_pieces_are_joined_into_lines_with_the_level_of_their_first_piece() -> None:
    joiner = LineJoiner()
    assert joiner.feed(WARN, "llama_context: n_ctx_per_seq (2048) ") == []
    assert joiner.feed(CONT, "< n_ctx_train (8192)\nload: ") == [
        (WARN, "llama_context: n_ctx_per_seq (2048) < n_ctx_train (8192)")
    ]
    assert joiner.feed(INFO, "ignored level, the line began at warn\n") == [
        (WARN, "load: ignored level, the line began at warn")
    ]
    assert joiner.feed(DEBUG, "a\nb\n\nc") == [(DEBUG, "a"), (DEBUG, "b")]
    assert joiner.feed(CONT, "\n") == [(DEBUG, "c")]


def test_a_continuation_after_a_whole_line_keeps_the_previous_level() -> None:
    joiner = LineJoiner()
    joiner.feed(WARN, "loading\n")
    assert joiner.feed(CONT, "...\n") == [(WARN, "...")]


@pytest.mark.slow
def test_every_line_of_a_json_edge_worker_is_json_llama_cpps_included(tmp_path: Path) -> None:
    """A model without a chat template, so the start-up also warns about the last resort."""
    model = without_chat_template(tmp_path)
    worker = start_edge_worker("--model", str(model), env={"SLLM_LOG__LEVEL": "debug"}, cwd=ROOT)
    worker.stop()
    _wait_until_read(worker.output)

    lines = [json.loads(line) for line in worker.output]  # raises on a line that is not JSON
    assert sum(line["event"] == "llama_cpp.log" for line in lines) > 50
    assert any("model buffer size" in line.get("text", "") for line in lines)
    [engine] = worker.events("edge.engine")
    # What the portability rule (tests/edge/test_portability.py) chooses for this CPU: on
    # without AMX, off with AMX and this llama-cpp-python; CI machines have either.
    choice = this_machine_choice("auto")
    assert (engine["extra_buffers"], engine["extra_buffers_reason"]) == (
        choice.enabled,
        choice.reason,
    )
    assert engine["system_info"].startswith("CPU :")
    assert engine["llama_cpp_version"]
    assert (engine["chat_template_source"], engine["chat_template"]) == ("last resort", "chatml")
    [guessed] = worker.events("edge.chat_template_guessed")
    assert guessed["level"] == "warning"
    assert guessed["model"] == engine["model"]
    assert guessed["model_path"] == str(model)


def _wait_until_read(output: list[str]) -> None:
    """The reader thread may still hold the last lines the stopped worker wrote."""
    count, deadline = -1, time.monotonic() + 5
    while len(output) != count and time.monotonic() < deadline:
        count = len(output)
        time.sleep(0.2)
