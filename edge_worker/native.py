"""llama.cpp's model and context through llama-cpp-python's public C bindings only.

`llama_cpp.Llama` builds its model parameters internally, so it cannot turn off llama.cpp's
CPU extra buffer types (AMX, repacked weights), which crash some builds on some CPUs
(docs/edge-engine.md); and its private attributes differ between releases. Every binding
used here exists with the same signature from llama-cpp-python 0.3.16 to 0.3.36.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

_backend_lock = threading.Lock()
_backend_ready = False
# Longest metadata value read back (architecture, model name).
_META_BUFFER = 256
# Prompts are decoded in chunks far smaller than this; llama.cpp's default for one batch.
_MAX_BATCH = 512


class NativeError(RuntimeError):
    """llama.cpp refused: a model it cannot load, a context it cannot create, a failed decode."""


def _init_backend() -> None:
    global _backend_ready
    with _backend_lock:
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True


def load_model(path: Path, *, extra_buffers: bool) -> Any:
    """A llama.cpp model handle, to free with `llama_cpp.llama_model_free`."""
    _init_backend()
    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = extra_buffers
    handle: Any = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not handle:
        raise NativeError(f"llama.cpp could not load {path}")
    return handle


def context_params(
    *, n_ctx: int, n_batch: int, n_threads: int, n_threads_batch: int
) -> llama_cpp.llama_context_params:
    params: llama_cpp.llama_context_params = llama_cpp.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = params.n_ubatch = n_batch
    params.n_threads = n_threads
    params.n_threads_batch = n_threads_batch
    # Newer llama.cpp turns flash attention on by default ("auto"; 0.3.16 has it off).
    # With it on, a position's logits depend on how the prompt was split into batches
    # (up to 0.65 apart here), so a prompt read partly from the KV cache would not
    # continue as the same prompt read whole.
    if hasattr(params, "flash_attn_type"):
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    return params


def tokenize(vocab: Any, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
    """`text` as tokens of the vocabulary `vocab` (`llama_model_get_vocab`)."""
    data = text.encode()
    # Enough nearly always (a token covers a byte or more); else -count says how many.
    capacity = len(data) + 8
    while True:
        tokens = (llama_cpp.llama_token * capacity)()
        count = llama_cpp.llama_tokenize(
            vocab, data, len(data), tokens, capacity, add_special, parse_special
        )
        if count >= 0:
            return list(tokens[:count])
        if -count <= capacity:  # not a size problem: the text was too long for int32
            raise NativeError(f"llama.cpp could not tokenize {len(data)} bytes of text")
        capacity = -count


class NativeModel:
    """One loaded model with one context (one sequence). Not thread-safe; `close()` frees
    both, after which no other method may be called."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int,
        n_threads_batch: int,
        extra_buffers: bool,
    ) -> None:
        self._model_handle: Any = load_model(path, extra_buffers=extra_buffers)
        params = context_params(
            n_ctx=n_ctx,
            n_batch=min(n_ctx, _MAX_BATCH),
            n_threads=n_threads,
            n_threads_batch=n_threads_batch,
        )
        self._context_handle: Any = llama_cpp.llama_init_from_model(self._model_handle, params)
        if not self._context_handle:
            llama_cpp.llama_model_free(self._model_handle)
            raise NativeError(f"llama.cpp could not create a context of {n_ctx} tokens for {path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model_handle)
        self._memory = llama_cpp.llama_get_memory(self._context_handle)
        self.n_ctx = int(llama_cpp.llama_n_ctx(self._context_handle))
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self._one = (llama_cpp.llama_token * 1)()
        self._piece = ctypes.create_string_buffer(64)

    def close(self) -> None:
        if self._context_handle:
            llama_cpp.llama_free(self._context_handle)
            self._context_handle = None
        if self._model_handle:
            llama_cpp.llama_model_free(self._model_handle)
            self._model_handle = None

    def meta(self, key: str) -> str | None:
        """A metadata value of the GGUF file as text, None when the file has no such key."""
        buffer = ctypes.create_string_buffer(_META_BUFFER)
        size = llama_cpp.llama_model_meta_val_str(
            self._model_handle, key.encode(), buffer, _META_BUFFER
        )
        if size < 0:
            return None
        if size >= _META_BUFFER:
            buffer = ctypes.create_string_buffer(size + 1)
            llama_cpp.llama_model_meta_val_str(self._model_handle, key.encode(), buffer, size + 1)
        return buffer.value.decode(errors="replace")

    def chat_template(self) -> str | None:
        """The model's default chat template: Jinja text, or (for a few popular files that
        carry none) the name of one of llama.cpp's built-in templates."""
        template: bytes | None = llama_cpp.llama_model_chat_template(self._model_handle, None)
        return template.decode(errors="replace") if template else None

    def token_text(self, token: int) -> str:
        """The vocabulary's text of a token (special tokens included), "" for none (-1)."""
        if token < 0:
            return ""
        text: bytes = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return text.decode(errors="replace")

    @property
    def bos(self) -> int:
        return int(llama_cpp.llama_vocab_bos(self._vocab))

    @property
    def eos(self) -> int:
        return int(llama_cpp.llama_vocab_eos(self._vocab))

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        return tokenize(self._vocab, text, add_special=add_special, parse_special=parse_special)

    def decode(self, tokens: Sequence[int]) -> None:
        """Evaluates tokens after those already in the cache."""
        if len(tokens) == 1:
            self._one[0] = tokens[0]
            batch = llama_cpp.llama_batch_get_one(self._one, 1)
        else:
            array = (llama_cpp.llama_token * len(tokens))(*tokens)
            batch = llama_cpp.llama_batch_get_one(array, len(tokens))
        status = llama_cpp.llama_decode(self._context_handle, batch)
        if status != 0:
            # 1: no room left in the KV cache; negative: an error.
            raise NativeError(f"llama_decode failed with status {status}")

    def keep_first(self, count: int) -> bool:
        """Drops every cached position from `count` on; False when the cache cannot drop a
        part of a sequence (recurrent models), and then nothing was dropped."""
        return bool(llama_cpp.llama_memory_seq_rm(self._memory, -1, count, -1))

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._memory, True)

    def last_logits(self) -> npt.NDArray[np.float32]:
        """A view (no copy) of the logits of the last evaluated position, valid until the
        next decode."""
        pointer = llama_cpp.llama_get_logits_ith(self._context_handle, -1)
        row: npt.NDArray[np.float32] = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        return row

    def is_end(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def token_bytes(self, token: int) -> bytes:
        """The token's text as UTF-8 bytes (a piece of a character, sometimes)."""
        size = len(self._piece)
        written = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, size, 0, False)
        if written < 0:  # the buffer was too small; -written is what it needs
            self._piece = ctypes.create_string_buffer(-written)
            return self.token_bytes(token)
        return self._piece.raw[:written]


def builtin_templates() -> frozenset[str]:
    """The names of the chat templates built into this llama.cpp."""
    count = llama_cpp.llama_chat_builtin_templates(None, 0)
    names = (ctypes.c_char_p * count)()
    llama_cpp.llama_chat_builtin_templates(names, count)
    return frozenset(name.decode() for name in names if name)


def apply_builtin_template(name: str, messages: Sequence[tuple[str, str]]) -> str:
    """A chat rendered by llama.cpp's built-in template `name`, ready for the reply."""
    # The structs hold pointers into these bytes objects, which must outlive the call.
    encoded = [(role.encode(), content.encode()) for role, content in messages]
    chat = (llama_cpp.llama_chat_message * len(encoded))(
        *(llama_cpp.llama_chat_message(role, content) for role, content in encoded)
    )
    capacity = 2 * sum(len(role) + len(content) for role, content in encoded) + 256
    while True:
        buffer = ctypes.create_string_buffer(capacity)
        size = llama_cpp.llama_chat_apply_template(
            name.encode(), chat, len(encoded), True, buffer, capacity
        )
        if size < 0:
            raise NativeError(f"llama.cpp has no chat template named {name!r}")
        if size < capacity:
            return buffer.raw[:size].decode(errors="replace")
        capacity = size + 1


def system_info() -> str:
    """The CPU features this llama.cpp build uses ("CPU : SSE3 = 1 | AVX2 = 1 | ...")."""
    info: bytes = llama_cpp.llama_print_system_info()
    return info.decode(errors="replace").strip()
