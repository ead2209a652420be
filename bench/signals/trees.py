"""`sllm bench trees`: does a non-linear model on the numeric signals beat the learner's
linear one? Cross-validation on one table only (a training table: never the test rows).

Three scorers, each fitted on the other folds and scored on the fold:
- linear: the learner's `LinearScorer` (TF-IDF + standardised signals, calibrated
  logistic regression), as `sllm learn` fits it;
- linear+trees: that logit plus a few shallow regression trees over the raw signals,
  boosted (Newton steps on the log-loss) from the out-of-fold linear decision
  (`SignalBooster`); the trees never read the decision, so an ONNX graph of it agrees
  with scikit-learn to float32 rounding;
- stacked: gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier) on the
  out-of-fold linear decision and the signals together.

`--model cascade` reads the query, the edge's answer and the cascade signals (answered
rows only); `pre-generation` the query and its shape. `--folds random` (5 folds, once
per seed) or `group` (5 folds of whole tasks, as `sllm learn` validates unseen tasks).
Figures: AUROC, APGR and CPT(50%) of the pooled out-of-fold scores, averaged over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeRegressor

from bench.signals.folds import FOLDS, Folds, Index, fold_splits
from router.learning import metrics
from router.learning.model import Inputs, LinearScorer
from router.learning.train import (
    Labelled,
    cascade_inputs,
    cascade_signal_names,
    difficulty_inputs,
)
from router.outcome_table import OutcomeRow
from router.query_shape import QUERY_SHAPE_NAMES

FloatArray = npt.NDArray[np.float64]
Model = Literal["cascade", "pre-generation"]
SCORERS = ("linear", "linear+trees", "stacked")
# Newton steps with a tiny Hessian (rows the model is sure of) are clipped to this.
_MAX_STEP = 4.0


@dataclass(frozen=True)
class BoostSettings:
    """Small and strongly regularised. The default is the best of eight settings in
    5-fold cross-validation of the cascade model on RouteLLM's GSM8K training table
    (depth 2-3, 40-80 trees, L2 5-50; docs/benchmarks.md, "Signals"), by a little."""

    depth: int = 3
    trees: int = 40
    rate: float = 0.1
    # L2 penalty on each leaf's Newton step, in units of summed Hessian (row weight).
    l2: float = 20.0
    min_leaf: int = 40


@dataclass
class SignalBooster:
    """logit = slope * decision + offset + rate * sum(tree(signals))."""

    settings: BoostSettings = field(default_factory=BoostSettings)
    slope: float = 1.0
    offset: float = 0.0
    trees: list[DecisionTreeRegressor] = field(default_factory=list)

    def fit(
        self,
        decision: FloatArray,
        signals: FloatArray,
        labels: npt.NDArray[np.bool_],
        weights: FloatArray,
    ) -> SignalBooster:
        """`decision`: the linear model's out-of-fold decision for each training row."""
        y = labels.astype(np.float64)
        platt = LogisticRegression(C=1e6, max_iter=1000)
        platt.fit(decision.reshape(-1, 1), labels.astype(int), sample_weight=weights)
        self.slope, self.offset = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        x = signals.astype(np.float32)
        raw = self.slope * decision + self.offset
        self.trees = []
        for _ in range(self.settings.trees):
            p = expit(raw)
            hessian = np.maximum(p * (1.0 - p), 1e-6)
            step = np.clip((y - p) / hessian, -_MAX_STEP, _MAX_STEP)
            tree = DecisionTreeRegressor(
                max_depth=self.settings.depth, min_samples_leaf=self.settings.min_leaf
            )
            tree.fit(x, step, sample_weight=weights * hessian)
            # An ONNX graph keeps thresholds as float32: make scikit-learn's the same.
            tree.tree_.threshold[:] = tree.tree_.threshold.astype(np.float32)
            # Leaf value = sum(w g) / (sum(w h) + l2): shrink each leaf's mean step.
            summed = tree.tree_.weighted_n_node_samples
            tree.tree_.value[:, 0, 0] *= summed / (summed + self.settings.l2)
            raw += self.settings.rate * tree.predict(x)
            self.trees.append(tree)
        return self

    def logit(self, decision: FloatArray, signals: FloatArray) -> FloatArray:
        raw: FloatArray = self.slope * decision + self.offset
        x = signals.astype(np.float32)
        for tree in self.trees:
            raw = raw + self.settings.rate * tree.predict(x)
        return raw


def _stacked() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_depth=2,
        max_iter=60,
        learning_rate=0.05,
        l2_regularization=1.0,
        min_samples_leaf=40,
        early_stopping=False,
        random_state=0,
    )


def _inputs(model: Model, rows: Sequence[OutcomeRow], names: tuple[str, ...]) -> Inputs:
    if model == "cascade":
        return cascade_inputs(rows, names)
    return difficulty_inputs([row.prompt for row in rows])


def _out_of_fold_decision(
    scorer: LinearScorer, inputs: Inputs, data: Labelled, seed: int
) -> FloatArray:
    """Each row's linear decision from a model (the scorer's C) fitted without it."""
    features = scorer._features(inputs, fit=False)
    y = data.acceptable.astype(int)
    decision = np.zeros(len(y))
    splits = min(FOLDS, int(y.sum()), int(len(y) - y.sum()))
    for train, test in StratifiedKFold(splits, shuffle=True, random_state=seed).split(features, y):
        model = LogisticRegression(C=scorer.regularisation, max_iter=5000)
        model.fit(features[train], y[train], data.weights[train])
        decision[test] = model.decision_function(features[test])
    return decision


def _fold_scores(
    model: Model, data: Labelled, names: tuple[str, ...], train: Index, test: Index, seed: int
) -> dict[str, FloatArray]:
    part, scored = data.subset(train), data.subset(test)
    fit_inputs, test_inputs = _inputs(model, part.rows, names), _inputs(model, scored.rows, names)
    assert fit_inputs.signals is not None and test_inputs.signals is not None
    scorer = LinearScorer(signal_names=names, uses_answer=model == "cascade")
    scorer.fit(fit_inputs, part.acceptable, part.weights)
    assert scorer.classifier is not None
    estimator = scorer.classifier.calibrated_classifiers_[0].estimator
    decision = _out_of_fold_decision(scorer, fit_inputs, part, seed)
    test_decision = estimator.decision_function(scorer._features(test_inputs, fit=False))
    trees = SignalBooster().fit(decision, fit_inputs.signals, part.acceptable, part.weights)
    stacked = _stacked().fit(
        np.column_stack([decision, fit_inputs.signals]),
        part.acceptable.astype(int),
        sample_weight=part.weights,
    )
    return {
        "linear": scorer.predict(test_inputs),
        "linear+trees": expit(trees.logit(test_decision, test_inputs.signals)),
        "stacked": stacked.predict_proba(np.column_stack([test_decision, test_inputs.signals]))[
            :, 1
        ],
    }


def cross_validate(
    rows: Sequence[OutcomeRow], model: Model, folds: Folds, seeds: Sequence[int]
) -> dict[str, dict[str, float]]:
    """Each scorer's AUROC, APGR and CPT(50%) on pooled out-of-fold scores, averaged over
    the seeds (group folds do not depend on the seed: one run)."""
    data = Labelled.of(rows)
    if model == "cascade":
        data = data.subset(data.answered)
    names = cascade_signal_names(data.rows) if model == "cascade" else QUERY_SHAPE_NAMES
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in SCORERS}
    for seed in seeds if folds == "random" else seeds[:1]:
        pooled = {name: np.zeros(len(data.rows)) for name in SCORERS}
        for train, test in fold_splits(data.rows, folds, seed):
            for name, score in _fold_scores(model, data, names, train, test, seed).items():
                pooled[name][test] = score
        for name, score in pooled.items():
            found = metrics.figures(score, data.edge, data.cloud)
            runs[name].append((found.auroc, found.apgr, found.cpt50))
    return {
        name: dict(zip(("auroc", "apgr", "cpt50"), np.mean(found, axis=0).tolist(), strict=True))
        | {"rows": float(len(data.rows))}
        for name, found in runs.items()
    }
