"""EdgeModel on the bundled model: the prompt cache, extra buffers, closing."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import pytest
import structlog
from llama_cpp import Llama
from structlog.testing import capture_logs

from edge_worker.model import PREFILL_CHUNK, EdgeModel, PrefillCount
from edge_worker.portability import llama_class_extra_buffers
from sllm.chat import ChatMessage
from sllm.models import bundled_model_path
from tests.edge.gguf_copies import requantized_q4_0

# llama.cpp's extra buffer types for the CPU: weights repacked for its vector width, or
# for AMX tiles where the CPU has them.
EXTRA_BUFFER_TYPE = re.compile(r"\b(CPU_REPACK|AMX)\b")
EXTRA_BUFFER = re.compile(r"\b(CPU_REPACK|AMX) model buffer size")
SYSTEM = ChatMessage("system", "You are a careful assistant who answers in few words. " * 12)


@pytest.fixture(scope="module")
def model() -> Iterator[EdgeModel]:
    model = EdgeModel(bundled_model_path(), n_ctx=1024, n_threads=1)
    yield model
    model.close()


@pytest.fixture
def captured() -> Iterator[list[dict[str, Any]]]:
    """Every log line while the test runs, debug ones included."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    with capture_logs() as lines:
        yield lines
    structlog.configure(**saved)


def _llama_lines(captured: list[dict[str, Any]]) -> list[str]:
    return [line["text"] for line in captured if line["event"] == "llama_cpp.log"]


def _ask(model: EdgeModel, question: str) -> list[int]:
    return model.render_prompt([SYSTEM, ChatMessage("user", question)])


def _shared(first: list[int], second: list[int]) -> int:
    return next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)


def test_a_shared_prefix_is_not_read_again_and_continues_as_a_cold_read(
    model: EdgeModel,
) -> None:
    first = _ask(model, "What is the capital of France?")
    second = _ask(model, "How many legs does a spider have? Answer in one word.")
    shared = _shared(first, second)
    assert shared > 2 * PREFILL_CHUNK  # the system prompt spans several chunks
    model.forget()
    assert model.prefill(first)
    for _ in range(3):  # a reply fills the cache beyond the prompt
        model.feed(int(np.argmax(model.last_logits())))

    assert model.prefill(second)
    assert model.last_prefill == PrefillCount(reused=shared, evaluated=len(second) - shared)
    warm = model.last_logits().copy()

    model.forget()
    assert model.prefill(second)
    assert model.last_prefill == PrefillCount(reused=0, evaluated=len(second))
    cold = model.last_logits()
    np.testing.assert_allclose(warm, cold, rtol=1e-5, atol=1e-4)


def test_the_same_prompt_again_reads_only_its_last_token(model: EdgeModel) -> None:
    prompt = _ask(model, "Name a prime number.")
    model.forget()
    model.prefill(prompt)
    cold = model.last_logits().copy()
    model.prefill(prompt)
    assert model.last_prefill == PrefillCount(reused=len(prompt) - 1, evaluated=1)
    np.testing.assert_allclose(model.last_logits(), cold, rtol=1e-5, atol=1e-4)


def test_an_interrupted_prefill_keeps_the_chunks_it_read(model: EdgeModel) -> None:
    prompt = _ask(model, "Name a colour.")
    model.forget()
    checks = iter([False, True])
    assert not model.prefill(prompt, lambda: next(checks))
    assert model.last_prefill == PrefillCount(reused=0, evaluated=PREFILL_CHUNK)
    assert model.prefill(prompt)
    assert model.last_prefill == PrefillCount(PREFILL_CHUNK, len(prompt) - PREFILL_CHUNK)


def test_extra_buffers_put_repackable_weights_in_a_cpu_repack_buffer(
    tmp_path: Path, captured: list[dict[str, Any]]
) -> None:
    """Observable in llama.cpp's log: with them on, the Q4_0 weights are repacked (into
    CPU_REPACK, or AMX tiles on a CPU with AMX); off, llama.cpp does not even consider
    those buffer types. Loading only: the crash on AMX comes with a multi-token prompt."""
    q4_0 = requantized_q4_0(tmp_path)
    EdgeModel(q4_0, n_ctx=256, n_threads=1, extra_buffers=True).close()
    on = _llama_lines(captured)
    assert any(EXTRA_BUFFER.search(line) for line in on), on
    EdgeModel(q4_0, n_ctx=256, n_threads=1, extra_buffers=False).close()
    off = _llama_lines(captured)[len(on) :]
    assert any("model buffer size" in line for line in off), off
    assert not any(EXTRA_BUFFER_TYPE.search(line) for line in off)


@pytest.mark.parametrize("enabled", [True, False])
def test_a_llama_class_built_inside_the_switch_follows_it(
    tmp_path: Path, captured: list[dict[str, Any]], enabled: bool
) -> None:
    """The stand-in server and the benchmark's bare loop build `llama_cpp.Llama`, which
    has no parameter for extra buffers: the switch must still reach llama.cpp."""
    q4_0 = requantized_q4_0(tmp_path)
    with llama_class_extra_buffers(enabled):
        llm = Llama(str(q4_0), n_ctx=256, n_threads=1, verbose=False)
    repacked = any(EXTRA_BUFFER.search(line) for line in _llama_lines(captured))
    assert (llm.model_params.use_extra_bufts, repacked) == (enabled, enabled)
    llm.close()
    # Outside the switch, llama-cpp-python's own defaults again.
    assert llama_cpp.llama_model_default_params().use_extra_bufts is True


def test_a_closed_model_can_be_closed_again() -> None:
    model = EdgeModel(bundled_model_path(), n_ctx=256, n_threads=1)
    model.close()
    model.close()
