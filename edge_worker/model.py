"""The local model: loading a GGUF file, rendering chat prompts, stepping one token at a time.

Only this module touches llama-cpp-python. Logits are read from the last row the context
produced (no `logits_all`), which keeps decoding at full speed.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import llama_cpp
import numpy as np
import numpy.typing as npt
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from sllm.chat import ChatMessage

GGUF_MAGIC = b"GGUF"
# Prompt tokens evaluated between two checks for cancellation or an expired budget.
PREFILL_CHUNK = 64

# For GGUF files that carry no chat template of their own.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelLoadError(RuntimeError):
    """The model file is missing, not a GGUF file, or llama.cpp could not load it."""


class EdgeModel:
    """One llama.cpp context: serves one generation at a time (the lock makes sure)."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
    ) -> None:
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        with path.open("rb") as file:
            if file.read(4) != GGUF_MAGIC:
                raise ModelLoadError(f"not a GGUF model file (bad magic bytes): {path}")
        # llama-cpp-python's default for n_threads; prompts get as many unless told.
        self.n_threads = n_threads or max((os.cpu_count() or 1) // 2, 1)
        self.n_threads_batch = n_threads_batch or self.n_threads
        try:
            self._llm = Llama(
                str(path),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads_batch,
                verbose=False,
            )
        except (ValueError, RuntimeError) as error:
            raise ModelLoadError(f"llama.cpp could not load {path}: {error}") from error
        self.path = path
        self.name = str(self._llm.metadata.get("general.name") or path.stem)
        self.n_ctx = self._llm.n_ctx()
        self.n_vocab = self._llm.n_vocab()
        self.lock = threading.Lock()
        self._piece = ctypes.create_string_buffer(64)
        self._vocab = self._llm._model.vocab
        vocab = self._llm._model
        self._formatter = Jinja2ChatFormatter(
            template=self._llm.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE,
            eos_token=vocab.token_get_text(self._llm.token_eos()),
            bos_token=vocab.token_get_text(self._llm.token_bos()),
        )

    def render_prompt(self, messages: Sequence[ChatMessage], primer: str = "") -> list[int]:
        """Prompt tokens for a chat, with `primer` already begun as the assistant's reply."""
        rendered = self._formatter(messages=[m.as_openai() for m in messages])  # type: ignore[misc]
        text = rendered.prompt + primer
        return self._llm.tokenize(text.encode(), add_bos=not rendered.added_special, special=True)

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode(), add_bos=False, special=False)

    def prefill(
        self, tokens: Sequence[int], interrupted: Callable[[], bool] = lambda: False
    ) -> bool:
        """Starts a new sequence: evaluates the prompt, in chunks so that a long prompt can
        be interrupted between them. False when `interrupted()` stopped it.

        The start the prompt shares with the previous sequence (the chat template, a system
        prompt) stays in the KV cache and is not read again."""
        llm = self._llm
        reused = self._shared_prefix(tokens)
        if reused > 0 and llm._ctx.kv_cache_seq_rm(-1, reused, -1):
            llm.n_tokens = reused
        else:
            reused = 0
            llm.reset()  # type: ignore[no-untyped-call]
        for start in range(reused, len(tokens), PREFILL_CHUNK):
            if interrupted():
                return False
            llm.eval(tokens[start : start + PREFILL_CHUNK])
        return True

    def forget(self) -> None:
        """Drops the cached sequence: the next prefill reads its whole prompt."""
        self._llm.reset()  # type: ignore[no-untyped-call]

    def _shared_prefix(self, tokens: Sequence[int]) -> int:
        """Leading tokens already in the cache, short of the last prompt token (reading that
        again yields the logits the first generated token needs)."""
        cached = self._llm.input_ids[: min(self._llm.n_tokens, len(tokens) - 1)]
        differs = np.flatnonzero(cached != np.asarray(tokens[: len(cached)]))
        return int(differs[0]) if differs.size else len(cached)

    def feed(self, token: int) -> None:
        self._llm.eval([token])

    def last_logits(self) -> npt.NDArray[np.float32]:
        """A view of the logits of the last evaluated position (valid until the next eval)."""
        pointer = self._llm._ctx.get_logits_ith(-1)
        row: npt.NDArray[np.float32] = np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,)
        )
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
