"""`sllm bench signals [--live TABLE] [--cache DIR] [--json PATH] [--quick]`, `sllm bench
agreement --table TABLE [--json PATH]`, `sllm bench trees --data TABLE [--model M]
[--folds F] [--seeds S] [--json PATH]`, `sllm bench knn --data TABLE [--folds F]
[--seeds S] [--variants V] [--cache DIR] [--json PATH]` and `sllm bench prompt-reading
[--test] [--shard K] [--json PATH]`; heavy imports wait for the handler."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sllm.cli import SubParsers

HELP = "difficulty signals: routing quality on unseen groups vs decision time"


def _run(args: argparse.Namespace) -> int:
    from bench.signals.run import run

    return run(args)


def _agreement(args: argparse.Namespace) -> int:
    from bench.results import headline
    from bench.signals.agreement import agreement_figures

    figures = agreement_figures(Path(args.table))
    for name, found in figures.items():
        print(name, json.dumps(found))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    cascade = figures["cascade"]
    print(
        headline(
            {
                "questions": figures["questions"],
                "agree_share": figures["agree_share"],
                "auroc_agreement": figures["all_rows"]["auroc_agreement"] or 0.0,
                "auroc_confidence": figures["all_rows"]["auroc_confidence"] or 0.0,
                "cascade_task_folds_auroc_without": cascade["without agreement"]["task_folds"][
                    "auroc"
                ],
                "cascade_task_folds_auroc_with": cascade["with agreement"]["task_folds"]["auroc"],
            }
        )
    )
    return 0


def _report(figures: dict[str, dict[str, float]], *, width: int, json_path: str | None) -> None:
    """A line of cross-validation figures per scorer; all of them as JSON at `json_path`."""
    for name, found in figures.items():
        print(
            f"{name:{width}s} rows {found['rows']:.0f}  AUROC {found['auroc']:.3f}  "
            f"APGR {found['apgr']:.3f}  CPT(50%) {found['cpt50']:.1%}"
        )
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def _trees(args: argparse.Namespace) -> int:
    from bench.signals.trees import cross_validate
    from router.outcome_table import read_table

    seeds = [int(seed) for seed in args.seeds.split(",")]
    figures = cross_validate(read_table(Path(args.data)), args.model, args.folds, seeds)
    print(f"{args.model}, {args.folds} folds, seeds {args.seeds}: {args.data}")
    _report(figures, width=13, json_path=args.json)
    return 0


def _knn(args: argparse.Namespace) -> int:
    from bench.signals.knn import VARIANTS, Table, cross_validate
    from bench.signals.run import embedded
    from router.outcome_table import read_table

    names = [name.strip() for name in (args.variants or ";".join(VARIANTS)).split(";")]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        print(f"unknown variants {unknown}; known: {list(VARIANTS)}")
        return 2
    found = embedded(Path(args.data).stem, read_table(Path(args.data)), Path(args.cache))
    seeds = [int(seed) for seed in args.seeds.split(",")]
    figures = cross_validate(Table.of(found.data, found.embedding), args.folds, seeds, names)
    print(f"{args.folds} folds, seeds {args.seeds}: {args.data}")
    _report(figures, width=28, json_path=args.json)
    return 0


def _prompt_reading(args: argparse.Namespace) -> int:
    from bench.signals.prompt_reading import run

    return run(args)


def _cache_and_json(parser: argparse.ArgumentParser, folder: str, what: str) -> None:
    parser.add_argument(
        "--cache",
        default=str(Path.home() / ".cache" / "sllm" / folder),
        help=f"where {what} are kept",
    )
    parser.add_argument("--json", metavar="PATH", help="write the figures here")


def register(bench_sub: SubParsers) -> None:
    parser = bench_sub.add_parser("signals", help=HELP)
    parser.add_argument(
        "--live", metavar="TABLE", help="the bundled edge's outcomes (sllm outcomes collect)"
    )
    _cache_and_json(parser, "signals", "the tables' embeddings")
    parser.add_argument("--quick", action="store_true", help="a quarter of MMLU's rows")
    parser.set_defaults(handler=_run)

    agreement = bench_sub.add_parser(
        "agreement",
        help="agreement of the edge's direct and step-by-step answers as a confidence signal",
    )
    agreement.add_argument(
        "--table",
        required=True,
        metavar="TABLE",
        help="both modes of each question: sllm outcomes collect --reasoning both",
    )
    agreement.add_argument("--json", metavar="PATH", help="write the figures here")
    agreement.set_defaults(handler=_agreement)

    trees = bench_sub.add_parser(
        "trees",
        help="cross-validation of linear scorers against boosted trees on their signals",
    )
    trees.add_argument(
        "--data", required=True, metavar="TABLE", help="a training table (never test rows)"
    )
    trees.add_argument("--model", choices=["cascade", "pre-generation"], default="cascade")
    trees.add_argument(
        "--folds",
        choices=["random", "group"],
        default="random",
        help="random: 5 folds per seed; group: 5 folds of whole tasks",
    )
    trees.add_argument("--seeds", default="0,1,2", metavar="N,...")
    trees.add_argument("--json", metavar="PATH", help="write the figures here")
    trees.set_defaults(handler=_trees)

    knn = bench_sub.add_parser(
        "knn", help="cross-validation of variants of the embedding k-NN difficulty model"
    )
    knn.add_argument(
        "--data", required=True, metavar="TABLE", help="a training table (never test rows)"
    )
    knn.add_argument(
        "--folds",
        choices=["random", "group"],
        default="random",
        help="random: 5 folds per seed; group: 5 folds of whole tasks (seed 0: GroupKFold)",
    )
    knn.add_argument("--seeds", default="0,1,2", metavar="N,...")
    knn.add_argument("--variants", metavar="NAME;...", help="a subset (bench/signals/knn.py)")
    _cache_and_json(knn, "signals", "the table's embeddings")
    knn.set_defaults(handler=_knn)

    reading = bench_sub.add_parser(
        "prompt-reading",
        help="the edge model's reading of the prompt (log-likelihood, hidden state) as a "
        "difficulty signal: cross-validation on the training rows, then the test rows once",
    )
    reading.add_argument(
        "--test",
        action="store_true",
        help="score the default and the variant chosen in cross-validation on the test rows",
    )
    reading.add_argument("--seeds", default="0,1,2", metavar="N,...", help="random folds' seeds")
    reading.add_argument(
        "--live", metavar="TABLE", help="the bundled edge's outcomes (sllm outcomes collect)"
    )
    reading.add_argument(
        "--shard",
        type=int,
        choices=[0, 1],
        help="read half of every table's prompts into the cache and stop",
    )
    reading.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    reading.add_argument(
        "--time", type=int, default=300, metavar="N", help="time the reading on N prompts (0: no)"
    )
    _cache_and_json(reading, "prompt-reading", "the tables' readings")
    reading.set_defaults(handler=_prompt_reading)
