"""Variants of the bundled GGUF model for tests, written next to the test's files."""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp

from edge_worker.llama_log import route_llama_logs
from sllm.models import bundled_model_path

_TEMPLATE_KEY = b"tokenizer.chat_template"


def without_chat_template(directory: Path) -> Path:
    """The bundled model with its chat template key renamed (same length, so no offset in
    the file moves): llama.cpp then finds no template in it."""
    data = bundled_model_path().read_bytes()
    assert data.count(_TEMPLATE_KEY) == 1
    path = directory / "no-template.gguf"
    path.write_bytes(data.replace(_TEMPLATE_KEY, b"tokenizer.chat_templatX"))
    return path


def requantized_q4_0(directory: Path) -> Path:
    """The bundled Q4_1 model requantized to Q4_0, a type llama.cpp repacks for AVX2 and
    AVX-512 (Q4_1 is not): its weights go to a CPU_REPACK buffer when extra buffers are on."""
    route_llama_logs()  # llama-cpp-python's own handler would print its lines to stderr
    path = directory / "q4_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    status = llama_cpp.llama_model_quantize(
        str(bundled_model_path()).encode(), str(path).encode(), ctypes.byref(params)
    )
    assert status == 0, f"llama_model_quantize failed with status {status}"
    return path
