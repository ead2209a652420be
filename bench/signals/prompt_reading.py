"""`sllm bench prompt-reading`: does the edge model's own reading of the prompt (its
log-likelihood of the question, or its mean-pooled last hidden state) help the
pre-generation difficulty model? Issue 14, part 3.

Tables (../shared/data/routellm): MMLU, every eighth row (reading all 12,534 prompts
would take hours on this machine), the subjects `sllm outcomes split --by-task` holds
out as the test rows; GSM8K, all rows, the random split of `sllm outcomes split`; with
`--live TABLE` (from `sllm outcomes collect`), the bundled edge's own outcomes, the
random split. Only the training rows are cross-validated (MMLU and the live table: 5
folds of whole tasks; GSM8K: 5 random folds per seed):

- tfidf+shape: the learner's default difficulty model (`LinearScorer` on the words
  and the question's shape);
- tfidf+shape+likelihood: the same plus the four likelihood statistics of
  `reading.LIKELIHOOD_NAMES` beside the shape;
- hidden-linear: a `LinearScorer` on the pooled hidden state alone;
- hidden-knn: the k-NN scorer of `sllm learn --difficulty embedding-knn` on the
  pooled hidden state, centred on the training rows' mean and scaled to unit norm.

On a table with the edge's answers (GSM8K, the live table), also the learner's cascade
model with and without the likelihood statistics beside its signals (`CASCADE_VARIANTS`,
chosen apart from the pre-generation ones).

The variant with the best cross-validated APGR is then fitted on all training rows and
scored once on the test rows, beside the default (`--test`); nothing is chosen on them.
Readings are cached (`--cache`), keyed by the model file and the prompts; `--shard K`
reads one half of every table and stops (two processes, one core each).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.signals.folds import Folds, Index, fold_splits
from bench.signals.reading import LIKELIHOOD_NAMES, MAX_TOKENS, PromptReader, read_all
from router.learning import metrics
from router.learning.importers import import_routellm
from router.learning.knn import KnnScorer
from router.learning.model import Inputs, LinearScorer
from router.learning.train import (
    Labelled,
    cascade_inputs,
    cascade_signal_names,
    difficulty_inputs,
    held_out,
)
from router.outcome_table import OutcomeRow, read_table
from router.query_shape import QUERY_SHAPE_NAMES
from sllm.models import bundled_model_path

ROUTELLM = Path(__file__).resolve().parents[3] / "shared" / "data" / "routellm"
FloatArray = npt.NDArray[np.float64]
TEST_SHARE = 0.3
SHARDS = 2
MMLU_EVERY = 8
VARIANTS = ("tfidf+shape", "tfidf+shape+likelihood", "hidden-linear", "hidden-knn")
# After generation, on a table with the edge's answers (the bundled edge's own outcomes).
CASCADE_VARIANTS = ("cascade", "cascade+likelihood")


@dataclass(frozen=True)
class Table:
    """Rows with their readings; `test`: the rows `sllm outcomes split` puts in the test
    table; `folds`: "group" (whole tasks) or "random"."""

    name: str
    data: Labelled
    likelihood: FloatArray
    hidden: npt.NDArray[np.float32]
    test: npt.NDArray[np.bool_]
    folds: Folds


def _key(prompts: Sequence[str], model: Path) -> str:
    text = json.dumps([model.name, MAX_TOKENS, "chat-template-v1", list(prompts)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_readings(
    name: str,
    prompts: Sequence[str],
    cache: Path,
    reader: Callable[[], PromptReader],
    *,
    only_shard: int | None = None,
) -> dict[str, npt.NDArray[Any]] | None:
    """Readings of every prompt, read in `SHARDS` interleaved parts, each cached; with
    `only_shard`, that part only (and None)."""
    key = _key(prompts, bundled_model_path())
    parts = []
    for shard in range(SHARDS):
        if only_shard is not None and shard != only_shard:
            continue
        path = cache / f"{name.replace('/', '_')}-{key}-{shard}.npz"
        if not path.exists():
            started = time.perf_counter()
            found = read_all(reader(), prompts[shard::SHARDS])
            print(f"{name}: read part {shard} in {time.perf_counter() - started:.0f} s")
            cache.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as file:
                np.savez(file, allow_pickle=False, **found)
        with np.load(path) as saved:
            parts.append({field: saved[field] for field in saved.files})
    if only_shard is not None:
        return None
    merged: dict[str, npt.NDArray[Any]] = {}
    for field in parts[0]:
        whole = np.zeros((len(prompts), *parts[0][field].shape[1:]), parts[0][field].dtype)
        for shard, part in enumerate(parts):
            whole[shard::SHARDS] = part[field]
        merged[field] = whole
    return merged


def routellm_rows(live: Path | None = None) -> dict[str, tuple[list[OutcomeRow], Folds, bool]]:
    """name -> (rows, folds, test held out by task). With `live` (`sllm outcomes
    collect`), the bundled edge's own outcomes too: task folds, the random split."""
    mmlu = list(import_routellm([ROUTELLM / "mmlu"]))
    tables: dict[str, tuple[list[OutcomeRow], Folds, bool]] = {
        "routellm/gsm8k": (list(import_routellm([ROUTELLM / "gsm8k"])), "random", False),
        "routellm/mmlu": ([r for i, r in enumerate(mmlu) if i % MMLU_EVERY == 0], "group", True),
    }
    if live is not None:
        tables["live"] = (read_table(live), "group", False)
    return tables


def make_table(
    name: str,
    rows: Sequence[OutcomeRow],
    readings: dict[str, npt.NDArray[Any]],
    folds: Folds,
    by_task: bool,
) -> Table:
    data = Labelled.of(rows)
    if len(data.rows) != len(rows):
        raise ValueError(f"{name}: every row needs an edge outcome")
    return Table(
        name=name,
        data=data,
        likelihood=readings["likelihood"].astype(np.float64),
        hidden=readings["hidden"].astype(np.float32),
        test=held_out(data.rows, TEST_SHARE, salt="split", by_group=by_task),
        folds=folds,
    )


def _unit(
    hidden: npt.NDArray[np.float32], centre: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    centred = hidden - centre
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (centred / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit


def variant_scores(variant: str, table: Table, train: Index, test: Index) -> FloatArray:
    """p_edge_ok of the `test` rows from a difficulty model of `variant` fitted on the
    `train` rows."""
    fit = table.data.subset(train)
    if variant in CASCADE_VARIANTS:
        return _cascade_scores(variant, table, train, test)
    if variant == "hidden-knn":
        centre = table.hidden[train].mean(axis=0)
        knn = KnnScorer.fit(_unit(table.hidden[train], centre), fit.acceptable, fit.weights)
        return knn.predict(_unit(table.hidden[test], centre))
    if variant == "hidden-linear":
        names = tuple(f"hidden_{i}" for i in range(table.hidden.shape[1]))

        def inputs(index: Index) -> Inputs:
            # An empty text column gives the model no words to read (model.NO_WORDS).
            return Inputs(text=[""] * len(index), signals=table.hidden[index].astype(np.float64))

    else:
        with_likelihood = variant == "tfidf+shape+likelihood"
        names = QUERY_SHAPE_NAMES + (LIKELIHOOD_NAMES if with_likelihood else ())

        def inputs(index: Index) -> Inputs:
            base = difficulty_inputs([table.data.rows[i].prompt for i in index])
            assert base.signals is not None
            if not with_likelihood:
                return base
            return Inputs(
                text=base.text, signals=np.hstack([base.signals, table.likelihood[index]])
            )

    model = LinearScorer(signal_names=names).fit(inputs(train), fit.acceptable, fit.weights)
    return model.predict(inputs(test))


def _cascade_scores(variant: str, table: Table, train: Index, test: Index) -> FloatArray:
    """The learner's cascade model (query, the edge's answer, its signals), with the
    likelihood statistics beside the signals for "cascade+likelihood"."""
    names = cascade_signal_names(table.data.rows)
    with_likelihood = variant == "cascade+likelihood"

    def inputs(index: Index) -> Inputs:
        base = cascade_inputs([table.data.rows[i] for i in index], names)
        assert base.signals is not None
        if not with_likelihood:
            return base
        signals = np.hstack([base.signals, table.likelihood[index]])
        return Inputs(text=base.text, answer=base.answer, signals=signals)

    fit = table.data.subset(train)
    model = LinearScorer(
        signal_names=names + (LIKELIHOOD_NAMES if with_likelihood else ()), uses_answer=True
    )
    return model.fit(inputs(train), fit.acceptable, fit.weights).predict(inputs(test))


def _splits(table: Table, rows: Index, seed: int) -> Iterator[tuple[Index, Index]]:
    """Folds of the rows `rows` (indices into the table), as indices into the table."""
    subset = [table.data.rows[i] for i in rows]
    for fit, scored in fold_splits(subset, table.folds, seed):
        yield rows[fit], rows[scored]


def _figures(score: FloatArray, data: Labelled) -> dict[str, float]:
    found = metrics.figures(score, data.edge, data.cloud)
    return {
        "auroc": found.auroc,
        "apgr": found.apgr,
        "cpt50": found.cpt50,
        "rows": float(len(score)),
    }


def cross_validate(
    table: Table, variants: Sequence[str], seeds: Sequence[int]
) -> dict[str, dict[str, float]]:
    """Pooled out-of-fold figures on the training rows only, averaged over the seeds (group
    folds do not depend on the seed: one run)."""
    train = np.flatnonzero(~table.test)
    data = table.data.subset(train)
    figures: dict[str, dict[str, float]] = {}
    for variant in variants:
        runs = []
        for seed in seeds if table.folds == "random" else seeds[:1]:
            pooled = np.zeros(len(table.data.rows))
            for fit, scored in _splits(table, train, seed):
                pooled[scored] = variant_scores(variant, table, fit, scored)
            runs.append(_figures(pooled[train], data))
        figures[variant] = {name: float(np.mean([run[name] for run in runs])) for name in runs[0]}
    return figures


def best_variant(figures: dict[str, dict[str, float]]) -> str:
    return max(figures, key=lambda variant: figures[variant]["apgr"])


def score_test_rows(table: Table, variants: Sequence[str]) -> dict[str, dict[str, float]]:
    """Each variant fitted on all training rows, scored on the test rows (once)."""
    train, test = np.flatnonzero(~table.test), np.flatnonzero(table.test)
    return {
        variant: _figures(variant_scores(variant, table, train, test), table.data.subset(test))
        for variant in variants
    }


def alone(table: Table) -> dict[str, float]:
    """AUROC of each likelihood statistic alone on the training rows (higher: easier)."""
    train = np.flatnonzero(~table.test)
    labels = table.data.acceptable[train]
    return {
        name: metrics.auroc(labels, table.likelihood[train, column])
        for column, name in enumerate(LIKELIHOOD_NAMES)
    }


def _percentiles(seconds: npt.NDArray[Any]) -> dict[str, float]:
    p50, p99 = np.percentile(np.asarray(seconds, np.float64) * 1000.0, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99)}


def run(args: argparse.Namespace) -> int:
    cache = Path(args.cache)
    made: list[PromptReader] = []

    def reader() -> PromptReader:
        if not made:
            made.append(PromptReader(bundled_model_path(), threads=args.threads))
        return made[0]

    seeds = [int(seed) for seed in args.seeds.split(",")]
    results: dict[str, Any] = {}
    live = Path(args.live) if args.live else None
    for name, (rows, folds, by_task) in routellm_rows(live).items():
        prompts = [row.prompt for row in rows]
        readings = cached_readings(name, prompts, cache, reader, only_shard=args.shard)
        if readings is None:
            continue
        table = make_table(name, rows, readings, folds, by_task)
        found: dict[str, Any] = {
            "rows": {"train": int((~table.test).sum()), "test": int(table.test.sum())},
            "reading": {
                "tokens_mean": float(readings["tokens"].mean()),
                **_percentiles(readings["seconds"]),
            },
            "alone_auroc": alone(table),
            "cross_validation": {},
            "chosen": {},
            "test": {},
        }
        print(name, "alone", json.dumps(found["alone_auroc"]))
        print(name, "reading", json.dumps(found["reading"]))
        answered = all(row.edge_answer is not None for row in table.data.rows)
        for group in (VARIANTS, CASCADE_VARIANTS) if answered else (VARIANTS,):
            figures = cross_validate(table, group, seeds)
            found["cross_validation"].update(figures)
            chosen = found["chosen"][group[0]] = best_variant(figures)
            for variant, figure in figures.items():
                print(name, "cv", variant, json.dumps(figure))
            print(name, "chosen in cross-validation:", chosen)
            if args.test:
                scored = score_test_rows(table, sorted({group[0], chosen}, key=group.index))
                found["test"].update(scored)
                for variant, figure in scored.items():
                    print(name, "test", variant, json.dumps(figure))
        results[name] = found
    if args.shard is None and args.time:
        results["prefill"] = prefill_times(reader(), args.time)
        print("prefill", json.dumps(results["prefill"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def prefill_times(reader: PromptReader, queries: int) -> dict[str, dict[str, float]]:
    """Per query, on MMLU prompts spread over the table: the worker's usual prefill of the
    question (last logits only) and the reading (every position's logits and hidden
    state, and the statistics), alternately."""
    mmlu = routellm_rows()["routellm/mmlu"][0]
    prompts = [row.prompt for row in mmlu[:: max(1, len(mmlu) // queries)]][:queries]
    for prompt in prompts[:5]:  # warm-up
        reader.read(prompt)
        reader.plain_prefill(prompt)
    plain, reading = [], []
    for prompt in prompts:
        plain.append(reader.plain_prefill(prompt))
        reading.append(reader.read(prompt).seconds)
    return {"prefill": _percentiles(np.array(plain)), "reading": _percentiles(np.array(reading))}
