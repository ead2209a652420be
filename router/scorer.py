"""The policy at run time: a policy directory loaded into onnxruntime sessions.

A policy directory (written by `sllm learn`, format in docs/learning.md) holds
policy.json (thresholds, model files, training-data hash, validation metrics),
scorer.onnx (query text, or its sentence embedding, -> p_edge_ok, used before
generation), optionally scorer_step_by_step.onnx (the same, were the edge to reason step
by step: the mode model) and cascade.onnx (query, edge answer and signals -> p_edge_ok,
used after the edge answered).
`Policy.load` checks all of it up front, so a bad directory fails there with a message
that says what is wrong, never in the middle of a request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.embedding.encoder import EncoderUnavailable, SentenceEncoder, shared_encoder
from router.query_shape import QUERY_SHAPE_NAMES, query_shape_rows
from router.signals import EdgeSignals, signal_vector, unknown_signals

MANIFEST = "policy.json"
OUTPUT = "p_edge_ok"


class PolicyError(ValueError):
    """A policy directory that cannot be used; the message says what to fix."""


class _Vanished(PolicyError):
    """A file or the directory went missing: most likely `sllm learn` swapping in a new
    policy under the same name at that instant, so loading starts again."""


# Loading starts again this many times when files vanish under it.
LOAD_ATTEMPTS = 5


class ScorerFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str = Field(min_length=1)
    description: str = ""


class CascadeFile(ScorerFile):
    signals: tuple[str, ...] = ()


class ModeFile(ScorerFile):
    # Step by step only where its p_edge_ok exceeds the direct one's by more than this
    # (1.0: never), chosen by the learner.
    margin: float = Field(default=0.0, ge=-1.0, le=1.0)


class EmbeddingSpec(BaseModel):
    """The sentence embedding a difficulty model reads instead of the query's text."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(min_length=1)
    dimension: int = Field(gt=0)
    max_tokens: int = Field(gt=0)


class DifficultyFile(ScorerFile):
    embedding: EmbeddingSpec | None = None
    # The question's shape (router/query_shape.py) the model reads besides its words, in
    # this order; the mode model (step_by_step) reads the same.
    signals: tuple[str, ...] = ()


class PolicyManifest(BaseModel):
    """policy.json. Unknown keys are kept, so a newer learner's extras do not break loading."""

    model_config = ConfigDict(frozen=True, extra="allow")

    format: Literal[1]
    version: str = Field(min_length=1)
    created_at: str
    pre_generation_threshold: float = Field(ge=0.0, le=1.0)
    cascade_threshold: float = Field(ge=0.0, le=1.0)
    scorer: DifficultyFile
    # The mode model: p_edge_ok were the edge to reason step by step (`scorer` is then the
    # direct answer's); it reads what `scorer` reads. None: the answer format decides.
    step_by_step: ModeFile | None = None
    cascade: CascadeFile | None = None
    training_data_sha256: str = ""
    validation: dict[str, Any] = Field(default_factory=dict)


def default_policy_dir() -> Path:
    """The policy shipped with sllm (router/default_policy/, README there says how it was made)."""
    return Path(__file__).resolve().parent / "default_policy"


def _read(directory: Path, handle: int, name: str, what: str) -> bytes:
    """A file of the directory opened through `handle`: every file of one load comes from
    the same directory, even when `sllm learn` swaps a new one in under the same name."""
    if name in {"", ".", ".."} or Path(name).name != name:
        raise PolicyError(
            f"{directory}: {what} {name!r} must be a file name inside the policy directory"
        )
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=handle)
    except FileNotFoundError as error:
        raise _Vanished(f"{directory}: cannot read {what} {name!r}: {error}") from error
    except OSError as error:
        raise PolicyError(f"{directory}: cannot read {what} {name!r}: {error}") from error
    with os.fdopen(fd, "rb") as data:
        return data.read()


def _session(
    directory: Path, handle: int, name: str, expected_inputs: dict[str, str]
) -> ort.InferenceSession:
    model = _read(directory, handle, name, f"model file named in {MANIFEST}")
    options = ort.SessionOptions()
    # Tiny graphs: one thread avoids the thread-pool hand-off that dominates their run time.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    path = directory / name
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise PolicyError(f"{path}: not a model onnxruntime can run: {error}") from error
    inputs = {i.name: i.type for i in session.get_inputs()}
    if inputs != expected_inputs:
        raise PolicyError(
            f"{path}: inputs are {inputs}, expected {expected_inputs} (see docs/learning.md)"
        )
    if OUTPUT not in {o.name for o in session.get_outputs()}:
        raise PolicyError(f"{path}: has no output {OUTPUT!r}")
    return session


def _text(value: str) -> np.ndarray[Any, np.dtype[np.object_]]:
    return np.array([[value]], dtype=object)


def _texts(values: Sequence[str]) -> np.ndarray[Any, np.dtype[np.object_]]:
    return np.array(values, dtype=object).reshape(-1, 1)


def _encoder(directory: Path, spec: EmbeddingSpec | None) -> SentenceEncoder | None:
    if spec is None:
        return None
    try:
        encoder = shared_encoder(spec.max_tokens)
    except EncoderUnavailable as error:
        raise PolicyError(
            f"{directory}: its difficulty model reads {spec.model}; {error}"
        ) from error
    if encoder.dimension != spec.dimension:
        raise PolicyError(
            f"{directory}: its difficulty model reads {spec.dimension}-dimensional embeddings "
            f"of {spec.model}; the installed model gives {encoder.dimension}"
        )
    return encoder


class Policy:
    """One loaded, immutable policy; safe to share between concurrent requests."""

    def __init__(
        self,
        directory: Path,
        manifest: PolicyManifest,
        scorer: ort.InferenceSession,
        cascade: ort.InferenceSession | None,
        step_by_step: ort.InferenceSession | None = None,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self._scorer = scorer
        self._cascade = cascade
        self._step_by_step = step_by_step
        self._encoder = _encoder(directory, manifest.scorer.embedding)
        self.loaded_at = time.time()

    @classmethod
    def load(cls, directory: Path | str) -> Policy:
        directory = Path(directory)
        for attempt in range(LOAD_ATTEMPTS):
            try:
                return cls._load_once(directory)
            except _Vanished:
                if attempt == LOAD_ATTEMPTS - 1:
                    raise
                time.sleep(0.001 * 2**attempt)
        raise AssertionError("unreachable")

    @classmethod
    def _load_once(cls, directory: Path) -> Policy:
        try:
            handle = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError as error:
            raise _Vanished(f"{directory}: cannot read {MANIFEST}: {error}") from error
        except OSError as error:
            raise PolicyError(f"{directory}: cannot read {MANIFEST}: {error}") from error
        try:
            return cls._load(directory, handle)
        finally:
            os.close(handle)

    @classmethod
    def _load(cls, directory: Path, handle: int) -> Policy:
        raw = _read(directory, handle, MANIFEST, "manifest")
        try:
            manifest = PolicyManifest.model_validate_json(raw)
        except ValidationError as error:
            raise PolicyError(f"{directory / MANIFEST}: invalid: {error}") from error
        scorer_input = "text" if manifest.scorer.embedding is None else "embedding"
        scorer_inputs = {
            scorer_input: "tensor(string)" if scorer_input == "text" else "tensor(float)"
        }
        shape = manifest.scorer.signals
        if shape:
            unknown = sorted(set(shape) - set(QUERY_SHAPE_NAMES))
            if unknown:
                raise PolicyError(f"{directory / MANIFEST}: unknown scorer signals {unknown}")
            scorer_inputs["signals"] = "tensor(float)"
        scorer = _session(directory, handle, manifest.scorer.file, scorer_inputs)
        step_by_step = None
        if manifest.step_by_step is not None:
            step_by_step = _session(directory, handle, manifest.step_by_step.file, scorer_inputs)
        cascade = None
        if manifest.cascade is not None:
            unknown = unknown_signals(manifest.cascade.signals)
            if unknown:
                raise PolicyError(f"{directory / MANIFEST}: unknown cascade signals {unknown}")
            expected = {"text": "tensor(string)", "answer": "tensor(string)"}
            if manifest.cascade.signals:
                expected["signals"] = "tensor(float)"
            cascade = _session(directory, handle, manifest.cascade.file, expected)
        policy = cls(directory, manifest, scorer, cascade, step_by_step)
        policy.p_edge_ok("")  # a model that loads but cannot score fails here, not later
        return policy

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def pre_generation_threshold(self) -> float:
        return self.manifest.pre_generation_threshold

    @property
    def cascade_threshold(self) -> float:
        return self.manifest.cascade_threshold

    @property
    def scorer_description(self) -> str:
        return self.manifest.scorer.description or self.manifest.scorer.file

    @property
    def has_cascade(self) -> bool:
        return self._cascade is not None

    @property
    def cascade_signals(self) -> tuple[str, ...]:
        return () if self.manifest.cascade is None else self.manifest.cascade.signals

    def _difficulty_feeds(self, queries: Sequence[str]) -> dict[str, Any]:
        if self._encoder is not None:
            return {"embedding": self._encoder.embed(queries)}
        feeds: dict[str, Any] = {"text": _texts(queries)}
        if self.manifest.scorer.signals:
            feeds["signals"] = query_shape_rows(self.manifest.scorer.signals, queries)
        return feeds

    def p_edge_ok(self, query_text: str) -> float:
        """Before generation: the probability that the edge's answer will be acceptable."""
        (scores,) = self._scorer.run([OUTPUT], self._difficulty_feeds([query_text]))
        return float(scores[0])

    @property
    def has_mode_model(self) -> bool:
        return self._step_by_step is not None

    @property
    def mode_margin(self) -> float:
        return 0.0 if self.manifest.step_by_step is None else self.manifest.step_by_step.margin

    def p_edge_ok_by_mode(self, query_text: str) -> tuple[float, float | None]:
        """`p_edge_ok` of the direct answer and, with a mode model, of a step-by-step one
        (None without); the query is read (or embedded) once for both."""
        feeds = self._difficulty_feeds([query_text])
        (direct,) = self._scorer.run([OUTPUT], feeds)
        if self._step_by_step is None:
            return float(direct[0]), None
        (step,) = self._step_by_step.run([OUTPUT], feeds)
        return float(direct[0]), float(step[0])

    def p_edge_ok_after(
        self, query_text: str, answer: str, signals: EdgeSignals, p_edge_ok: float | None = None
    ) -> float:
        """After the edge answered. Without a cascade model, the edge's own confidence.
        `p_edge_ok`: this query's pre-generation score (`p_edge_ok`), which a k-NN
        policy's cascade model reads (`signals.DIFFICULTY_SIGNAL`)."""
        if self._cascade is None:
            return float(signals.confidence_score)
        feeds: dict[str, Any] = {"text": _text(query_text), "answer": _text(answer)}
        if self.cascade_signals:
            vector = signal_vector(
                self.cascade_signals,
                query=query_text,
                answer=answer,
                edge=signals,
                p_edge_ok=p_edge_ok,
            )
            feeds["signals"] = vector.reshape(1, -1)
        (scores,) = self._cascade.run([OUTPUT], feeds)
        return float(scores[0])

    def p_edge_ok_many(
        self, queries: Sequence[str], *, step_by_step: bool = False
    ) -> npt.NDArray[np.float32]:
        """`p_edge_ok` for many queries in one run (evaluation, learning); `step_by_step`:
        the mode model's (the policy must have one)."""
        session = self._step_by_step if step_by_step else self._scorer
        if session is None:
            raise PolicyError(f"{self.directory}: the policy has no mode model")
        if not queries:
            return np.zeros(0, dtype=np.float32)
        (scores,) = session.run([OUTPUT], self._difficulty_feeds(queries))
        return np.asarray(scores, dtype=np.float32)

    def p_edge_ok_after_many(
        self,
        queries: Sequence[str],
        answers: Sequence[str],
        signals: Sequence[EdgeSignals | None],
        p_edge_ok: Sequence[float] | None = None,
    ) -> npt.NDArray[np.float32]:
        """`p_edge_ok_after` for many answered queries; None: the edge's signals are unknown.
        `p_edge_ok`: their pre-generation scores (`p_edge_ok_many`)."""
        if self._cascade is None:
            return np.array([s.confidence_score if s else 0.0 for s in signals], np.float32)
        if not queries:
            return np.zeros(0, dtype=np.float32)
        feeds: dict[str, Any] = {"text": _texts(queries), "answer": _texts(answers)}
        if self.cascade_signals:
            before: Sequence[float | None] = (
                [None] * len(queries) if p_edge_ok is None else p_edge_ok
            )
            feeds["signals"] = np.stack(
                [
                    signal_vector(self.cascade_signals, query=q, answer=a, edge=s, p_edge_ok=p)
                    for q, a, s, p in zip(queries, answers, signals, before, strict=True)
                ]
            )
        (scores,) = self._cascade.run([OUTPUT], feeds)
        return np.asarray(scores, dtype=np.float32)
