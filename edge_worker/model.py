"""The local model: loading a GGUF file, rendering chat prompts, stepping one token at a time.

Only this module and the ones it builds on (native, templates, llama_log) touch
llama-cpp-python, and only its public bindings. Logits are read from the last row the
context produced, as a view (no copy), which keeps decoding at full speed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_worker.llama_log import route_llama_logs
from edge_worker.native import NativeError, NativeModel, builtin_templates
from edge_worker.portability import this_machine_choice
from edge_worker.templates import (
    BuiltinRenderer,
    JinjaRenderer,
    PromptRenderer,
    RenderedPrompt,
    TemplateChoice,
    TemplateError,
    choose_template,
)
from sllm.chat import ChatMessage

GGUF_MAGIC = b"GGUF"
# Prompt tokens evaluated between two checks for cancellation or an expired budget.
PREFILL_CHUNK = 64


class ModelLoadError(RuntimeError):
    """The model file is missing, not a GGUF file, llama.cpp could not load it, or its chat
    template cannot be used."""


@dataclass(frozen=True, slots=True)
class PrefillCount:
    """Prompt tokens taken from the KV cache, and those the model evaluated."""

    reused: int
    evaluated: int


class EdgeModel:
    """One llama.cpp context: serves one generation at a time (the lock makes sure)."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int | None = None,
        n_threads_batch: int | None = None,
        extra_buffers: bool | None = None,
        chat_template: str | None = None,
    ) -> None:
        """`extra_buffers`: None: what `edge_worker.portability` chooses for this CPU and
        this llama-cpp-python (llama.cpp's own default, on, crashes some of them)."""
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        with path.open("rb") as file:
            if file.read(4) != GGUF_MAGIC:
                raise ModelLoadError(f"not a GGUF model file (bad magic bytes): {path}")
        # llama-cpp-python's default for n_threads; prompts get as many unless told.
        self.n_threads = n_threads or max((os.cpu_count() or 1) // 2, 1)
        self.n_threads_batch = n_threads_batch or self.n_threads
        route_llama_logs()
        if extra_buffers is None:
            extra_buffers = this_machine_choice("auto").enabled
        try:
            self._native = NativeModel(
                path,
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads_batch,
                extra_buffers=extra_buffers,
            )
        except NativeError as error:
            raise ModelLoadError(str(error)) from error
        try:
            self.template = choose_template(
                setting=chat_template,
                gguf_template=self._native.chat_template(),
                architecture=self._native.meta("general.architecture"),
                builtins=builtin_templates(),
            )
            self._render = self._renderer(self.template)
        except TemplateError as error:
            self._native.close()
            raise ModelLoadError(f"{path}: {error}") from error
        self.path = path
        self.name = self._native.meta("general.name") or path.stem
        self.n_ctx = self._native.n_ctx
        self.n_vocab = self._native.n_vocab
        self.lock = threading.Lock()
        # The tokens whose keys and values the context holds, in order.
        self._cached: list[int] = []
        self.last_prefill = PrefillCount(0, 0)

    def _renderer(self, choice: TemplateChoice) -> PromptRenderer:
        if choice.jinja is None:
            return BuiltinRenderer(choice.name)
        native = self._native
        return JinjaRenderer(
            choice.jinja,
            bos_token=native.token_text(native.bos),
            eos_token=native.token_text(native.eos),
        )

    def close(self) -> None:
        """Frees the model and its context; nothing may be called afterwards."""
        self._native.close()

    def render(self, messages: Sequence[ChatMessage]) -> RenderedPrompt:
        """A chat as this model's template writes it (text, not yet tokens)."""
        return self._render(messages)

    def render_prompt(self, messages: Sequence[ChatMessage], primer: str = "") -> list[int]:
        """Prompt tokens for a chat, with `primer` already begun as the assistant's reply."""
        rendered = self.render(messages)
        return self._native.tokenize(
            rendered.text + primer, add_special=rendered.add_special, parse_special=True
        )

    def tokenize(self, text: str) -> list[int]:
        return self._native.tokenize(text, add_special=False, parse_special=False)

    def prefill(
        self, tokens: Sequence[int], interrupted: Callable[[], bool] = lambda: False
    ) -> bool:
        """Starts a new sequence: evaluates the prompt, in chunks so that a long prompt can
        be interrupted between them. False when `interrupted()` stopped it.

        The start the prompt shares with the previous sequence (the chat template, a system
        prompt) stays in the KV cache and is not read again; `last_prefill` counts both."""
        reused = self._shared_prefix(tokens)
        if reused > 0 and self._native.keep_first(reused):
            del self._cached[reused:]
        else:
            reused = 0
            self.forget()
        self.last_prefill = PrefillCount(reused, 0)
        for start in range(reused, len(tokens), PREFILL_CHUNK):
            if interrupted():
                return False
            chunk = tokens[start : start + PREFILL_CHUNK]
            self._decode(chunk)
            self.last_prefill = PrefillCount(reused, self.last_prefill.evaluated + len(chunk))
        return True

    def forget(self) -> None:
        """Drops the cached sequence: the next prefill reads its whole prompt."""
        self._native.clear()
        self._cached.clear()

    def _shared_prefix(self, tokens: Sequence[int]) -> int:
        """Leading tokens already in the cache, short of the last prompt token (reading that
        again yields the logits the first generated token needs)."""
        limit = max(min(len(self._cached), len(tokens) - 1), 0)
        pairs = enumerate(zip(self._cached[:limit], tokens[:limit], strict=True))
        return next((index for index, (cached, new) in pairs if cached != new), limit)

    def _decode(self, tokens: Sequence[int]) -> None:
        try:
            self._native.decode(tokens)
        except NativeError:
            # What the failed batch left in the cache is unknown: start afresh next time.
            self.forget()
            raise
        self._cached.extend(tokens)

    def feed(self, token: int) -> None:
        self._decode((token,))

    def last_logits(self) -> npt.NDArray[np.float32]:
        """A view of the logits of the last evaluated position (valid until the next eval)."""
        return self._native.last_logits()

    def is_end(self, token: int) -> bool:
        return self._native.is_end(token)

    def token_bytes(self, token: int) -> bytes:
        """The token's text as UTF-8 bytes (a piece of a character, sometimes)."""
        return self._native.token_bytes(token)
