"""`sllm bench signals`: what each candidate difficulty signal adds to pre-generation
routing, on a random split and on groups the models never saw, against what it costs
in decision time.

Data sets (../shared/data): RouteLLM's MMLU (the random split of `sllm outcomes split`;
unseen groups two ways: the 12 subjects `--by-task` holds out, and every row scored by
models fitted without its subject, in 5 folds of whole subjects as `sllm learn` does)
and GSM8K (random split; one task, no group to hold out); with `--live TABLE` (from
`sllm outcomes collect`) the bundled edge's own outcomes too (random split; task folds).

Signals, each a difficulty model fitted on the training rows:
- tfidf: TF-IDF of the query's words (`LinearScorer`, the learner's default);
- embedding: a `LinearScorer` on the query's sentence embedding (all-MiniLM-L6-v2 on
  onnxruntime);
- tfidf+embedding: both in one `LinearScorer`;
- embedding-knn: the acceptable share among the 50 training queries nearest in the
  embedding (`KnnScorer`, what `sllm learn --difficulty embedding-knn` fits).
On the live table, also the edge's option share (a cascade signal, after generation):
the cascade model on its CHOICE_LETTER and YES_NO rows with and without it.

Decision time is that of scoring one query as the router would: the default policy's
ONNX scorer (tfidf); the embedding's forward pass plus a dot product (the linear ones)
or the k-NN scorer's ONNX graph; p50 and p99 over 300 MMLU prompts, one thread.

Embeddings of the tables are cached (`--cache`), keyed by the model and the prompts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from router.embedding.encoder import MAX_TOKENS, MODEL, shared_encoder
from router.learning import metrics
from router.learning.grouped import Index, cross_fit
from router.learning.importers import import_routellm
from router.learning.knn import KnnScorer
from router.learning.model import Inputs, LinearScorer
from router.learning.train import Labelled, cascade_inputs, cascade_signal_names, held_out
from router.outcome_table import OutcomeRow, read_table
from router.scorer import Policy, default_policy_dir

ROOT = Path(__file__).resolve().parents[2]
ROUTELLM = ROOT.parent / "shared" / "data" / "routellm"
FloatArray = npt.NDArray[np.float64]
TEST_SHARE = 0.3
TIMED_QUERIES = 300
SIGNALS = ("tfidf", "embedding", "tfidf+embedding", "embedding-knn")


@dataclass(frozen=True)
class Table:
    name: str
    data: Labelled
    embedding: npt.NDArray[np.float32]

    def part(self, index: Index) -> tuple[Labelled, npt.NDArray[np.float32]]:
        return self.data.subset(index), self.embedding[index]


def _scores(signal: str, train: Table, train_index: Index, test_index: Index) -> FloatArray:
    """p_edge_ok of the test rows from a model of `signal` fitted on the train rows."""
    fit, fit_embedding = train.part(train_index)
    scored, scored_embedding = train.part(test_index)
    if signal == "embedding-knn":
        return KnnScorer.fit(fit_embedding, fit.acceptable, fit.weights).predict(scored_embedding)

    def inputs(data: Labelled, embedding: npt.NDArray[np.float32]) -> Inputs:
        # An empty text column gives the model no words to read (see model.NO_WORDS).
        text = [row.prompt for row in data.rows] if "tfidf" in signal else [""] * len(data.rows)
        return Inputs(
            text=text, signals=embedding.astype(np.float64) if "embedding" in signal else None
        )

    names = tuple(f"embedding_{i}" for i in range(train.embedding.shape[1]))
    model = LinearScorer(signal_names=names if "embedding" in signal else ())
    model.fit(inputs(fit, fit_embedding), fit.acceptable, fit.weights)
    return model.predict(inputs(scored, scored_embedding))


def _figures(score: FloatArray, data: Labelled) -> dict[str, float]:
    found = metrics.figures(score, data.edge, data.cloud)
    return {"auroc": found.auroc, "apgr": found.apgr, "cpt50": found.cpt50, "rows": len(score)}


def _split(table: Table, signal: str, *, by_group: bool = False) -> dict[str, float]:
    """The test side of `sllm outcomes split` (`--by-task`: MMLU's 12 of 47 subjects)."""
    test = held_out(table.data.rows, TEST_SHARE, salt="split", by_group=by_group)
    train_index, test_index = np.flatnonzero(~test), np.flatnonzero(test)
    score = _scores(signal, table, train_index, test_index)
    return _figures(score, table.data.subset(test_index))


def _held_out_groups(table: Table, signal: str) -> dict[str, float]:
    return _split(table, signal, by_group=True)


def _group_folds(table: Table, signal: str) -> dict[str, float]:
    """Every row scored by a model fitted without its group (`grouped.cross_fit`)."""
    unseen = cross_fit(
        table.data.rows, lambda train, test: (_scores(signal, table, train, test), None)
    )
    return _figures(unseen.pre, table.data)


UNSEEN: dict[str, Callable[[Table, str], dict[str, float]]] = {
    "held_out_groups": _held_out_groups,
    "group_folds": _group_folds,
}


def embedded(name: str, rows: Sequence[OutcomeRow], cache: Path) -> Table:
    data = Labelled.of(rows)
    prompts = [row.prompt for row in data.rows]
    key = hashlib.sha256(json.dumps([MODEL, MAX_TOKENS, prompts]).encode()).hexdigest()[:16]
    path = cache / f"{name.replace('/', '_')}-{key}.npy"
    if path.exists():
        embedding = np.load(path)
    else:
        started = time.perf_counter()
        embedding = shared_encoder().embed(prompts)
        print(f"{name}: embedded {len(prompts)} prompts in {time.perf_counter() - started:.0f} s")
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path, embedding)
    return Table(name=name, data=data, embedding=embedding)


def _percentiles(timings: Sequence[float]) -> dict[str, float]:
    p50, p99 = np.percentile(np.array(timings) * 1000.0, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99)}


def decision_times(queries: Sequence[str], train: Table) -> dict[str, dict[str, float]]:
    """Per signal, the time to score one query as the router would: the default
    policy's TF-IDF scorer; the embedding's forward pass, plus a logistic regression's
    dot product or the k-NN scorer's ONNX graph (fitted on `train`), as a policy
    learned with `--difficulty embedding-knn` runs it."""
    policy = Policy.load(default_policy_dir())
    encoder = shared_encoder()
    weights = np.zeros(encoder.dimension, np.float32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    knn_session = ort.InferenceSession(
        KnnScorer.fit(train.embedding, train.data.acceptable).to_onnx().SerializeToString(),
        options,
        providers=["CPUExecutionProvider"],
    )

    def tfidf(query: str) -> None:
        policy.p_edge_ok(query)

    def embedding(query: str) -> None:
        float(encoder.embed([query])[0] @ weights)

    def both(query: str) -> None:
        tfidf(query)
        embedding(query)

    def knn(query: str) -> None:
        knn_session.run(["p_edge_ok"], {"embedding": encoder.embed([query])})

    steps: dict[str, Callable[[str], None]] = {
        "tfidf": tfidf,
        "embedding": embedding,
        "tfidf+embedding": both,
        "embedding-knn": knn,
    }
    times: dict[str, dict[str, float]] = {}
    for signal, step in steps.items():
        for query in queries[:10]:  # warm-up: first runs allocate
            step(query)
        timings = []
        for query in queries:
            started = time.perf_counter()
            step(query)
            timings.append(time.perf_counter() - started)
        times[signal] = _percentiles(timings)
    return times


def _tables(args: argparse.Namespace) -> list[tuple[Table, tuple[str, ...]]]:
    """(table, how its unseen groups are made: the names of `UNSEEN`)."""
    cache = Path(args.cache)
    mmlu = list(import_routellm([ROUTELLM / "mmlu"]))
    gsm8k = list(import_routellm([ROUTELLM / "gsm8k"]))
    if args.quick:
        mmlu = [row for i, row in enumerate(mmlu) if i % 4 == 0]
    tables = [
        (embedded("routellm/mmlu", mmlu, cache), ("held_out_groups", "group_folds")),
        (embedded("routellm/gsm8k", gsm8k, cache), ()),
    ]
    if args.live:
        live = read_table(Path(args.live))
        tables.append((embedded("live", live, cache), ("group_folds",)))
    return tables


def _cascade(table: Table, names: tuple[str, ...], train: Index, test: Index) -> FloatArray:
    fit, scored = table.data.subset(train), table.data.subset(test)
    model = LinearScorer(signal_names=names, uses_answer=True)
    model.fit(cascade_inputs(fit.rows, names), fit.acceptable, fit.weights)
    return model.predict(cascade_inputs(scored.rows, names))


def option_share_figures(table: Table) -> dict[str, Any]:
    """The cascade model on the table's CHOICE_LETTER and YES_NO rows with and without
    the edge's option share (random split; task folds), and each confidence alone."""
    options = [
        i
        for i, row in enumerate(table.data.rows)
        if row.answer_format in ("CHOICE_LETTER", "YES_NO") and row.edge_signals
    ]
    rows = Table(
        table.name, table.data.subset(np.array(options, np.intp)), table.embedding[options]
    )
    every = cascade_signal_names(rows.data.rows)
    variants = {
        "with option_share": every,
        "without option_share": tuple(n for n in every if n != "option_share"),
    }
    figures: dict[str, Any] = {}
    test = held_out(rows.data.rows, TEST_SHARE, salt="split")
    train_index, test_index = np.flatnonzero(~test), np.flatnonzero(test)
    for variant, names in variants.items():

        def fit_and_score(
            train: Index, test: Index, names: tuple[str, ...] = names
        ) -> tuple[FloatArray, None]:
            return _cascade(rows, names, train, test), None

        folds = cross_fit(rows.data.rows, fit_and_score)
        figures[f"cascade {variant}"] = {
            "random_split": _figures(
                _cascade(rows, names, train_index, test_index), rows.data.subset(test_index)
            ),
            "group_folds": _figures(folds.pre, rows.data),
        }
    for signal in ("option_share", "confidence_score"):
        score = np.array(
            [row.edge_signals.value(signal) for row in rows.data.rows if row.edge_signals]
        )
        figures[f"{signal} alone"] = {"all_rows": _figures(score, rows.data)}
    return figures


def run(args: argparse.Namespace) -> int:
    results: dict[str, Any] = {"tables": {}}
    tables = _tables(args)
    for table, groupings in tables:
        per_signal: dict[str, Any] = {}
        for signal in SIGNALS:
            per_signal[signal] = {"random_split": _split(table, signal)}
            for grouping in groupings:
                per_signal[signal][grouping] = UNSEEN[grouping](table, signal)
            print(table.name, signal, json.dumps(per_signal[signal]))
        results["tables"][table.name] = per_signal
        if table.name == "live":
            results["option_share"] = option_share_figures(table)
            for variant, found in results["option_share"].items():
                print("live", variant, json.dumps(found))
    mmlu = tables[0][0]
    queries = [
        row.prompt for row in mmlu.data.rows[:: max(1, len(mmlu.data.rows) // TIMED_QUERIES)]
    ][:TIMED_QUERIES]
    train = np.flatnonzero(~held_out(mmlu.data.rows, TEST_SHARE, salt="split"))
    fit, fit_embedding = mmlu.part(train)
    results["decision"] = decision_times(queries, Table(mmlu.name, fit, fit_embedding))
    for signal, times in results["decision"].items():
        print("decision", signal, json.dumps(times))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0
