"""The edge model's own reading of a prompt: per-token log-likelihood statistics and
the mean-pooled last hidden state of the question's tokens, from one llama.cpp prefill.

The prompt is read as the edge worker reads it: its chat template (the GGUF file's own,
through `EdgeModel`), the question as the user's message. The template's start (system
prompt, the user's marker) is the same for every question and stays in the KV cache, as
the worker keeps it; only the question's tokens are decoded per query, with an output
(logits and hidden state) at every position. The model is causal, so those positions
are what the full prompt would give them: the instruction and primer that follow the
question change nothing before it. At most `MAX_TOKENS` question tokens are read.

llama-cpp-python's `Llama` is not used: built with its defaults (extra buffer types on)
it segfaults at its first multi-token decode on a CPU with AMX, such as this machine's
(docs/edge-engine.md), and one context here gives every position's logits and hidden
state. The model is loaded through the public C bindings instead, without extra buffer
types, as edge_worker/native.py does.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

from edge_worker.model import EdgeModel
from edge_worker.native import NativeError, context_params, load_model, tokenize
from sllm.chat import ChatMessage

Float32 = npt.NDArray[np.float32]
MAX_TOKENS = 96
# A token the model gave less than e^-5 (0.7%) counts as a surprise.
SURPRISE = -5.0
LIKELIHOOD_NAMES = (
    "prompt_mean_logprob",
    "prompt_min_logprob",
    "prompt_surprise_share",
    "prompt_mean_entropy",
)
_SENTINEL = "\u2063QUESTION\u2063"
_CONTEXT = 512


def log_softmax(logits: Float32) -> npt.NDArray[np.float64]:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    logp: npt.NDArray[np.float64] = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return logp


def likelihood_statistics(predicting: Float32, tokens: Sequence[int]) -> npt.NDArray[np.float64]:
    """`predicting[j]`: the logits of the position before token j (so the first row is
    the template's last position). Mean and min log-probability of the tokens, the share
    below `SURPRISE`, and the mean entropy of the predictive distributions."""
    logp = log_softmax(predicting)
    chosen = logp[np.arange(len(tokens)), np.asarray(tokens)]
    entropy = -(np.exp(logp) * logp).sum(axis=1)
    return np.array(
        [chosen.mean(), chosen.min(), float((chosen < SURPRISE).mean()), entropy.mean()]
    )


@dataclass(frozen=True)
class Reading:
    """Per prompt: `LIKELIHOOD_NAMES` statistics, the pooled hidden state, and the time
    the decode and the statistics took (seconds)."""

    likelihood: npt.NDArray[np.float64]
    hidden: Float32
    tokens: int
    seconds: float


class PromptReader:
    """One context of the edge model with embeddings (per-token, no pooling) and logits
    at every position; the chat template's start kept in its KV cache."""

    def __init__(self, path: Path, *, threads: int = 2) -> None:
        edge = EdgeModel(path, n_ctx=_CONTEXT, n_threads=threads, extra_buffers=False)
        try:
            rendered = edge.render((ChatMessage(role="user", content=_SENTINEL),))
        finally:
            edge.close()
        self.template_start = rendered.text.split(_SENTINEL)[0]
        self._model: Any = load_model(path, extra_buffers=False)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.n_embd = int(llama_cpp.llama_model_n_embd(self._model))
        self._read = self._context(threads, embeddings=True)
        # The worker's own kind of context (last logits only), to time a plain prefill.
        self._plain = self._context(threads, embeddings=False)
        self.prefix = self.tokenize(
            self.template_start, special=True, add_special=rendered.add_special
        )
        self._batch = llama_cpp.llama_batch_init(_CONTEXT, 0, 1)
        self._decode(self._read, self.prefix, 0, outputs=True)
        self._prefix_logits = self._logits(self._read, len(self.prefix))[-1].copy()
        self._decode(self._plain, self.prefix, 0, outputs=False)

    def _context(self, threads: int, *, embeddings: bool) -> Any:
        # As the worker's (flash attention off), with outputs at every position.
        params = context_params(
            n_ctx=_CONTEXT, n_batch=_CONTEXT, n_threads=threads, n_threads_batch=threads
        )
        params.embeddings = embeddings
        params.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_NONE
        context = llama_cpp.llama_init_from_model(self._model, params)
        if not context:
            raise NativeError("llama.cpp could not create a context")
        return context

    def close(self) -> None:
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._read)
        llama_cpp.llama_free(self._plain)
        llama_cpp.llama_model_free(self._model)

    def tokenize(self, text: str, *, special: bool = False, add_special: bool = False) -> list[int]:
        return tokenize(self._vocab, text, add_special=add_special, parse_special=special)

    def _decode(self, context: Any, tokens: Sequence[int], start: int, *, outputs: bool) -> None:
        """Decodes `tokens` at positions from `start`; every position an output, or the
        last one only."""
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(context), -1, start, -1)
        batch = self._batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = outputs or i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        status = llama_cpp.llama_decode(context, batch)
        if status != 0:
            raise NativeError(f"llama_decode failed with status {status}")

    def _logits(self, context: Any, rows: int) -> Float32:
        pointer = llama_cpp.llama_get_logits(context)
        return np.ctypeslib.as_array(pointer, shape=(rows, self.n_vocab))

    def question_tokens(self, question: str) -> list[int]:
        return self.tokenize(question)[:MAX_TOKENS] or self.tokenize(" ")

    def read(self, question: str) -> Reading:
        tokens = self.question_tokens(question)
        started = time.perf_counter()
        self._decode(self._read, tokens, len(self.prefix), outputs=True)
        logits = self._logits(self._read, len(tokens))
        predicting = np.vstack([self._prefix_logits[None, :], logits[:-1]])
        likelihood = likelihood_statistics(predicting, tokens)
        pointer = llama_cpp.llama_get_embeddings(self._read)
        hidden = np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)),
            shape=(len(tokens), self.n_embd),
        ).mean(axis=0, dtype=np.float64)
        seconds = time.perf_counter() - started
        return Reading(likelihood, hidden.astype(np.float32), len(tokens), seconds)

    def plain_prefill(self, question: str) -> float:
        """Seconds the worker's usual prefill of the same tokens takes (last logits only)."""
        tokens = self.question_tokens(question)
        started = time.perf_counter()
        self._decode(self._plain, tokens, len(self.prefix), outputs=False)
        return time.perf_counter() - started


def read_all(reader: PromptReader, questions: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
    """Likelihood statistics [N, 4], hidden states [N, n_embd], tokens and seconds [N]."""
    readings = []
    for done, question in enumerate(questions):
        readings.append(reader.read(question))
        if done % 200 == 199:
            print(f"read {done + 1} of {len(questions)}", flush=True)
    return {
        "likelihood": np.array([r.likelihood for r in readings]).reshape(-1, len(LIKELIHOOD_NAMES)),
        "hidden": np.array([r.hidden for r in readings], np.float32).reshape(-1, reader.n_embd),
        "tokens": np.array([r.tokens for r in readings]),
        "seconds": np.array([r.seconds for r in readings]),
    }
