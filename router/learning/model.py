"""The two scorers as scikit-learn models: TF-IDF of the text inputs plus standardised
signals, a logistic regression on top, calibrated with Platt scaling.

Linear on purpose: the router's decision budget is a fraction of a millisecond, and a
linear model over TF-IDF exports to a handful of ONNX operators (see `onnx_export`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

FloatArray = npt.NDArray[np.float64]

# Word unigrams only: skl2onnx's TF-IDF matches scikit-learn exactly for these (its
# n-gram and sublinear-tf conversions do not), and they keep the ONNX graph fast.
VOCABULARY_SIZE = 4000
REGULARISATION_GRID = (0.1, 0.3, 1.0, 3.0)


@dataclass(frozen=True)
class Inputs:
    """The columns a scorer reads: the query, and for the cascade the edge's answer and
    signals (rows x len(signal_names))."""

    text: Sequence[str]
    answer: Sequence[str] | None = None
    signals: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.text)

    def subset(self, index: npt.NDArray[np.intp]) -> Inputs:
        return Inputs(
            text=[self.text[i] for i in index],
            answer=None if self.answer is None else [self.answer[i] for i in index],
            signals=None if self.signals is None else self.signals[index],
        )


# ASCII words: onnxruntime's tokenizer (RE2) draws word boundaries around non-ASCII
# letters where Python's `re` does not ("25ºC", "40π"), so scikit-learn's default pattern
# would give the ONNX graph different tokens for such text. A query's one-character words
# are its choice labels and variables; an answer's may be all it says ("B", "7").
TOKEN_PATTERN = r"[A-Za-z0-9_]{2,}"
ANSWER_TOKEN_PATTERN = r"[A-Za-z0-9_]+"
# The vocabulary of texts with no word in common: a string no token can equal, so its
# feature is always 0 and its weight stays 0. The input stays, as the policy format wants.
NO_WORDS = "-"


def _fit_words(texts: Sequence[str], pattern: str) -> tuple[TfidfVectorizer, sparse.csr_matrix]:
    vectorizer = TfidfVectorizer(
        max_features=VOCABULARY_SIZE, min_df=2, token_pattern=pattern, dtype=np.float32
    )
    try:
        return vectorizer, vectorizer.fit_transform(texts)
    except ValueError:
        # No word in two texts (single letters, empty or non-ASCII texts, a few rows):
        # scikit-learn refuses an empty vocabulary, the model can do without one.
        vectorizer = TfidfVectorizer(vocabulary=[NO_WORDS], token_pattern=pattern, dtype=np.float32)
        return vectorizer, vectorizer.fit_transform(texts)


def reads_words(vectorizer: TfidfVectorizer | None) -> bool:
    return vectorizer is not None and list(vectorizer.vocabulary_) != [NO_WORDS]


@dataclass
class LinearScorer:
    """P(edge acceptable) from the query (pre-generation) or query + answer + signals."""

    signal_names: tuple[str, ...] = ()
    uses_answer: bool = False
    text_vectorizer: TfidfVectorizer | None = None
    answer_vectorizer: TfidfVectorizer | None = None
    scaler: StandardScaler | None = None
    classifier: CalibratedClassifierCV | None = None
    regularisation: float = 1.0

    def _features(self, inputs: Inputs, *, fit: bool) -> sparse.csr_matrix:
        if fit:
            self.text_vectorizer, words = _fit_words(inputs.text, TOKEN_PATTERN)
        else:
            assert self.text_vectorizer is not None
            words = self.text_vectorizer.transform(inputs.text)
        blocks = [words]
        if self.uses_answer:
            if inputs.answer is None:
                raise ValueError("this scorer reads the edge's answer; none given")
            if fit:
                self.answer_vectorizer, words = _fit_words(inputs.answer, ANSWER_TOKEN_PATTERN)
            else:
                assert self.answer_vectorizer is not None
                words = self.answer_vectorizer.transform(inputs.answer)
            blocks.append(words)
        if self.signal_names:
            if inputs.signals is None or inputs.signals.shape[1] != len(self.signal_names):
                raise ValueError(f"this scorer reads {len(self.signal_names)} signals")
            if fit:
                self.scaler = StandardScaler()
                self.scaler.fit(inputs.signals)
            assert self.scaler is not None
            blocks.append(sparse.csr_matrix(self.scaler.transform(inputs.signals)))
        return sparse.hstack(blocks, format="csr")

    def fit(
        self, inputs: Inputs, labels: npt.NDArray[np.bool_], weights: FloatArray | None = None
    ) -> LinearScorer:
        """Picks the regularisation by cross-validated AUROC, then fits and calibrates."""
        features = self._features(inputs, fit=True)
        y = labels.astype(int)
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
        best = max(
            REGULARISATION_GRID,
            key=lambda c: _cross_validated_auroc(features, y, weights, c, folds),
        )
        self.regularisation = best
        self.classifier = CalibratedClassifierCV(
            LogisticRegression(C=best, max_iter=5000),
            method="sigmoid",
            cv=folds,
            ensemble=False,
        )
        self.classifier.fit(features, y, sample_weight=weights)
        return self

    def predict(self, inputs: Inputs) -> FloatArray:
        if self.classifier is None:
            raise RuntimeError("fit the scorer first")
        probabilities: FloatArray = self.classifier.predict_proba(
            self._features(inputs, fit=False)
        )[:, 1]
        return probabilities


def _cross_validated_auroc(
    features: sparse.csr_matrix,
    y: npt.NDArray[np.int_],
    weights: FloatArray | None,
    regularisation: float,
    folds: StratifiedKFold,
) -> float:
    scores = []
    for train, test in folds.split(features, y):
        model = LogisticRegression(C=regularisation, max_iter=5000)
        model.fit(features[train], y[train], None if weights is None else weights[train])
        scores.append(roc_auc_score(y[test], model.decision_function(features[test])))
    return float(np.mean(scores))
