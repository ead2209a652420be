"""The embedding k-NN difficulty model: P(edge acceptable) for a query is the (weighted)
acceptable share among the K training queries nearest to it in a sentence embedding.

Why: a linear model over TF-IDF words learns which *task* is hard (the words of an MMLU
subject), and is at chance on a subject it never saw; neighbours in an embedding of the
question carry over to questions like them in new subjects (docs/benchmarks.md,
"signals"). Non-linear on purpose: a logistic regression over the embedding did worse.
The ONNX graph is a MatMul against the training embeddings, TopK and a mean; the
learner scores with it too, so that its figures are the router's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

Float32 = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.float64]
# Measured on RouteLLM's MMLU (subjects held out) and GSM8K: 50 is best or within 0.01
# APGR of the best of 10-400 on each.
NEIGHBOURS = 50
INPUT = "embedding"
# Rows scored at once by `leave_one_out` (a block x training rows similarity matrix).
LOO_BLOCK = 1024
OUTPUT = "p_edge_ok"
OPSET = 17


@dataclass(frozen=True)
class KnnScorer:
    """Training embeddings (unit norm, so a dot product is the cosine) and labels."""

    neighbours: Float32
    # Weight of each training row, and weight times its label (1: acceptable).
    weights: Float32
    weighted_labels: Float32
    k: int
    _session: ort.InferenceSession = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        object.__setattr__(
            self,
            "_session",
            ort.InferenceSession(
                self.to_onnx().SerializeToString(), options, providers=["CPUExecutionProvider"]
            ),
        )

    @classmethod
    def fit(
        cls, embeddings: Float32, labels: npt.NDArray[np.bool_], weights: FloatArray | None = None
    ) -> KnnScorer:
        w = np.ones(len(labels), np.float32) if weights is None else weights.astype(np.float32)
        return cls(
            neighbours=np.ascontiguousarray(embeddings, dtype=np.float32),
            weights=w,
            weighted_labels=w * labels.astype(np.float32),
            k=min(NEIGHBOURS, len(labels)),
        )

    @property
    def dimension(self) -> int:
        return int(self.neighbours.shape[1])

    def predict(self, embeddings: Float32) -> FloatArray:
        """Through onnxruntime, as the router scores: numpy's and onnxruntime's float32
        dot products differ in the last bit, enough to swap the K-th neighbour."""
        (share,) = self._session.run([OUTPUT], {INPUT: embeddings.astype(np.float32)})
        return np.asarray(share, dtype=np.float64)

    def leave_one_out(self, rows: npt.NDArray[np.intp] | None = None) -> FloatArray:
        """The score of each training row (or of `rows`, indices into the training rows)
        from its K nearest *other* training rows: what a model fitted without the row
        says of it, for a model fitted on top of these scores (the cascade model reads
        them; its training rows' own labels would leak in through `predict`)."""
        index = np.arange(len(self.weights)) if rows is None else np.asarray(rows, np.intp)
        k = min(self.k, len(self.weights) - 1)
        if k < 1:  # one training row: no other row to ask
            return np.full(len(index), float(self.weighted_labels.sum() / self.weights.sum()))
        scores = np.zeros(len(index))
        for start in range(0, len(index), LOO_BLOCK):
            block = index[start : start + LOO_BLOCK]
            similarity = self.neighbours[block] @ self.neighbours.T
            similarity[np.arange(len(block)), block] = -np.inf
            top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            scores[start : start + len(block)] = self.weighted_labels[top].sum(1) / self.weights[
                top
            ].sum(1)
        return scores

    def to_onnx(self) -> onnx.ModelProto:
        """ "embedding": float [N, dimension] -> "p_edge_ok": float [N]."""
        nodes = [
            helper.make_node("MatMul", [INPUT, "neighbours_t"], ["similarity"]),
            helper.make_node("TopK", ["similarity", "k"], ["top_values", "top"], axis=1),
            helper.make_node("Gather", ["weighted_labels", "top"], ["top_labels"]),
            helper.make_node("Gather", ["weights", "top"], ["top_weights"]),
            helper.make_node("ReduceSum", ["top_labels", "axis_1"], ["label_sum"], keepdims=0),
            helper.make_node("ReduceSum", ["top_weights", "axis_1"], ["weight_sum"], keepdims=0),
            helper.make_node("Div", ["label_sum", "weight_sum"], [OUTPUT]),
        ]
        initializers = [
            numpy_helper.from_array(np.ascontiguousarray(self.neighbours.T), "neighbours_t"),
            numpy_helper.from_array(np.array([self.k], np.int64), "k"),
            numpy_helper.from_array(self.weighted_labels, "weighted_labels"),
            numpy_helper.from_array(self.weights, "weights"),
            numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
        ]
        graph = helper.make_graph(
            nodes,
            "sllm_knn_scorer",
            [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [None, self.dimension])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [None])],
            initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sllm-learn"
        )
        # onnx may be newer than onnxruntime: the IR version of this opset's release.
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model
