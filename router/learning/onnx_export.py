"""A fitted `LinearScorer` as one ONNX graph from raw text, so the router runs only
onnxruntime.

skl2onnx converts each TF-IDF vectorizer; the rest (standardised signals, the logistic
regression and its Platt calibration) is three matrix operators and a sigmoid, written
here directly so that the whole scorer is one small graph with the input and output
names of the policy format (docs/learning.md).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import StringTensorType
from sklearn.feature_extraction.text import TfidfVectorizer

from router.learning.model import LinearScorer

OUTPUT = "p_edge_ok"
OPSET = 17
# skl2onnx lower-cases with a StringNormalizer whose default locale (en_US.UTF-8) is
# missing from minimal images; "C" lower-cases ASCII the same way scikit-learn does for
# the words that matter here, and exists everywhere.
_LOCALE = "C"


def _vectorizer_graph(vectorizer: TfidfVectorizer, input_name: str) -> tuple[onnx.ModelProto, str]:
    model = convert_sklearn(
        vectorizer,
        initial_types=[(input_name, StringTensorType([None, 1]))],
        target_opset=OPSET,
        options={id(vectorizer): {"locale": _LOCALE}},
    )
    prefixed = onnx.compose.add_prefix(model, f"{input_name}_", rename_inputs=False)
    return prefixed, prefixed.graph.output[0].name


def to_onnx(scorer: LinearScorer) -> onnx.ModelProto:
    if scorer.classifier is None:
        raise ValueError("fit the scorer before exporting it")
    calibrated = scorer.classifier.calibrated_classifiers_[0]
    estimator, calibrator = calibrated.estimator, calibrated.calibrators[0]

    assert scorer.text_vectorizer is not None
    parts = [_vectorizer_graph(scorer.text_vectorizer, "text")]
    if scorer.uses_answer:
        assert scorer.answer_vectorizer is not None
        parts.append(_vectorizer_graph(scorer.answer_vectorizer, "answer"))
    nodes: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    features: list[str] = []
    opsets: dict[str, int] = {}
    for model, output in parts:
        nodes.extend(model.graph.node)
        initializers.extend(model.graph.initializer)
        inputs.extend(model.graph.input)
        features.append(output)
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)

    if scorer.signal_names:
        assert scorer.scaler is not None
        inputs.append(
            helper.make_tensor_value_info(
                "signals", TensorProto.FLOAT, [None, len(scorer.signal_names)]
            )
        )
        initializers += [
            numpy_helper.from_array(scorer.scaler.mean_.astype(np.float32), "signals_mean"),
            numpy_helper.from_array(scorer.scaler.scale_.astype(np.float32), "signals_scale"),
        ]
        nodes += [
            helper.make_node("Sub", ["signals", "signals_mean"], ["signals_centred"]),
            helper.make_node("Div", ["signals_centred", "signals_scale"], ["signals_scaled"]),
        ]
        features.append("signals_scaled")

    # Platt scaling: p = sigmoid(-(a * decision + b)), folded into the linear layer.
    slope, offset = float(calibrator.a_), float(calibrator.b_)
    weights = (-slope * estimator.coef_.T).astype(np.float32)
    bias = (-(slope * estimator.intercept_) - offset).astype(np.float32)
    initializers += [
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
    ]
    if len(features) > 1:
        nodes.append(helper.make_node("Concat", features, ["features"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", features, ["features"]))
    nodes += [
        helper.make_node("MatMul", ["features", "weights"], ["logit_unbiased"]),
        helper.make_node("Add", ["logit_unbiased", "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
        helper.make_node("Reshape", ["probability", "flat"], [OUTPUT]),
    ]
    graph = helper.make_graph(
        nodes,
        "sllm_scorer",
        inputs,
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [None])],
        initializers,
    )
    opsets[""] = max(opsets.get("", 0), OPSET)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets.items()],
        producer_name="sllm-learn",
        # The IR version of the converted parts: onnx may be newer than onnxruntime.
        ir_version=min(model.ir_version for model, _ in parts),
    )
    onnx.checker.check_model(model)
    return model
