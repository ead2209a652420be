"""`sllm learn`: planted rules recovered, thresholds that hold, an exact ONNX export, and
a worse policy refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.metrics import roc_auc_score

from router.learning.model import Inputs, LinearScorer
from router.learning.onnx_export import to_onnx
from router.learning.thresholds import Target, simulate
from router.learning.train import (
    HOLDOUT_SHARE,
    Labelled,
    cascade_inputs,
    cascade_signal_names,
    held_out,
    policy_scores,
)
from router.outcome_table import OutcomeRow, write_table
from router.scorer import Policy
from tests.learning.conftest import learn
from tests.learning.synthetic import planted_answer_rule, planted_query_rule


def _edge_right(rows: list[OutcomeRow]) -> np.ndarray:
    return np.array([row.edge_score == 1.0 for row in rows])


def test_difficulty_model_recovers_a_planted_query_rule(query_rule_policy: Path) -> None:
    policy = Policy.load(query_rule_policy)
    fresh = planted_query_rule(600, seed=11)
    scores = [policy.p_edge_ok(row.prompt) for row in fresh]
    assert roc_auc_score(_edge_right(fresh), scores) > 0.9


def test_cascade_model_recovers_a_rule_planted_in_the_answer(
    answer_rule_policy: tuple[str, Path],
) -> None:
    via, directory = answer_rule_policy
    policy = Policy.load(directory)
    assert policy.has_cascade
    fresh = planted_answer_rule(400, seed=12, via=via)
    after = [
        policy.p_edge_ok_after(row.prompt, row.edge_answer or "", row.edge_signals)
        for row in fresh
        if row.edge_signals is not None
    ]
    before = [policy.p_edge_ok(row.prompt) for row in fresh]
    assert roc_auc_score(_edge_right(fresh), after) > 0.9
    # the prompt carries nothing: only the answer side can have learned the rule
    assert roc_auc_score(_edge_right(fresh), before) < 0.7


def test_edge_statistics_become_cascade_signals_when_every_answer_has_them() -> None:
    names = cascade_signal_names(planted_answer_rule(5, seed=3, via="logprob"))
    assert "mean_logprob" in names
    assert "text_final_marker" in names


@pytest.mark.parametrize("target", ["quality=0.95", "cloud_share=0.3"])
def test_thresholds_meet_the_target_on_held_out_rows(
    target: str, query_rule_table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "policy"
    assert learn(query_rule_table, out, target=target) == 0
    policy = Policy.load(out)
    validation = policy.manifest.validation
    assert validation["target_met"] is True
    goal = Target.parse(target)
    if goal.kind == "quality":
        assert validation["quality"] >= 0.95 * validation["cloud_quality"] - 1e-9
    else:
        assert validation["cloud_share"] <= 0.3 + 1e-9
    # Rows the learner never saw, from the same distribution: the target holds up to
    # sampling noise.
    fresh = Labelled.of(planted_query_rule(1000, seed=21))
    pre, after = policy_scores(policy, fresh.rows)
    point = simulate(
        pre,
        after,
        fresh.edge,
        fresh.cloud,
        fresh.weights,
        policy.pre_generation_threshold,
        policy.cascade_threshold,
        goal,
    )
    if goal.kind == "quality":
        assert point.quality >= 0.95 * point.cloud_quality - 0.03
        assert point.cloud_share < 0.9  # and it does not get there by sending everything
    else:
        assert point.cloud_share <= 0.3 + 0.05
        assert point.quality > fresh.edge.mean()  # the cloud calls go where they help


def test_onnx_export_gives_scikit_learn_probabilities() -> None:
    rows = planted_answer_rule(300, seed=4, via="logprob")
    names = cascade_signal_names(rows)
    scorer = LinearScorer(signal_names=names, uses_answer=True).fit(
        cascade_inputs(rows, names), Labelled.of(rows).acceptable
    )
    fresh = planted_answer_rule(50, seed=5, via="text")
    # text the training never saw, including what tokenizers disagree on
    odd = ["", "   ", "25ºC and 40π", "ÜNÏCÖDÉ Straße", "w001 " * 3000, "a\nb\tc", "😀 w002"]
    texts = [row.prompt for row in fresh] + odd
    answers = [row.edge_answer or "" for row in fresh] + list(reversed(odd))
    signals = np.vstack(
        [
            cascade_inputs(fresh, names).signals,
            np.random.default_rng(0).normal(size=(len(odd), len(names))),
        ]
    )
    inputs = Inputs(text=texts, answer=answers, signals=signals)
    session = ort.InferenceSession(
        to_onnx(scorer).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (onnx_scores,) = session.run(
        ["p_edge_ok"],
        {
            "text": np.array(texts, dtype=object).reshape(-1, 1),
            "answer": np.array(answers, dtype=object).reshape(-1, 1),
            "signals": signals.astype(np.float32),
        },
    )
    np.testing.assert_allclose(onnx_scores, scorer.predict(inputs), atol=1e-5, rtol=0)


def test_policy_json_records_data_hash_and_validation(
    query_rule_policy: Path, query_rule_table: Path
) -> None:
    import hashlib

    manifest = json.loads((query_rule_policy / "policy.json").read_text())
    assert (
        manifest["training_data_sha256"]
        == hashlib.sha256(query_rule_table.read_bytes()).hexdigest()
    )
    assert manifest["cascade"] is None  # no edge answers in that table
    assert manifest["validation"]["onnx_max_abs_diff"] <= 1e-5
    assert manifest["validation"]["rows_train"] + manifest["validation"]["rows_validation"] == 1200
    readme = (query_rule_policy / "README.md").read_text()
    assert f"sllm learn --data {query_rule_table} --target quality=0.95" in readme


def test_a_worse_policy_is_refused(
    query_rule_policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fresh rows whose training part has its outcomes shuffled (a broken labeller), while
    # the part held out for validation is true: the new policy learns nothing, and the
    # comparison on those held-out rows must show it.
    rows = planted_query_rule(1200, seed=31)
    validation = held_out(rows, HOLDOUT_SHARE, salt="learn")
    training = [row.edge_score for row, v in zip(rows, validation, strict=True) if not v]
    np.random.default_rng(0).shuffle(training)
    replaced = iter(training)
    broken = [
        row if v else row.model_copy(update={"edge_score": next(replaced)})
        for row, v in zip(rows, validation, strict=True)
    ]
    table = tmp_path / "broken.jsonl"
    write_table(broken, table)
    out = tmp_path / "new"
    assert learn(table, out, "--refuse-worse-than", str(query_rule_policy)) == 2
    assert "refused" in capsys.readouterr().err
    assert not out.exists()
    assert not list(tmp_path.glob(".new*"))  # no staging left behind
    # without the baseline the same table gives a policy: the refusal came from the check
    assert learn(table, out) == 0


def test_an_equally_good_policy_is_accepted(
    query_rule_policy: Path, query_rule_table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "again"
    assert learn(query_rule_table, out, "--refuse-worse-than", str(query_rule_policy)) == 0
    assert Policy.load(out).manifest.validation["baseline"]["version"]


def test_learning_replaces_an_existing_policy_directory(
    query_rule_table: Path, tmp_path: Path
) -> None:
    out = tmp_path / "policy"
    assert learn(query_rule_table, out) == 0
    first = Policy.load(out).version
    (out / "stale.txt").write_text("from the old policy")
    assert learn(query_rule_table, out, target="cloud_share=0.2") == 0
    assert not (out / "stale.txt").exists()
    assert Policy.load(out).manifest.model_extra == {"target": "cloud_share=0.2"}
    assert first  # both loadable; the second replaced the first whole


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [OutcomeRow(id=f"r{i}", prompt=f"q {i}", edge_score=1.0) for i in range(50)],
            "needs at least 10 rows",
        ),
        (
            [OutcomeRow(id=f"r{i}", prompt=f"q {i}") for i in range(50)],
            "no row has the edge's outcome",
        ),
        # enough in the table, too few in the part the models are fitted on
        (
            [OutcomeRow(id=f"r{i}", prompt=f"q {i}", edge_score=float(i % 2)) for i in range(22)],
            "the training part (19 of 22 labelled rows, by a hash of their id): needs at least "
            "10 rows where the edge was acceptable and 10 where it was not; has 10 and 9; add "
            "rows of the scarcer class or lower --holdout-share",
        ),
    ],
)
def test_a_table_with_nothing_to_learn_is_refused_with_a_reason(
    rows: list[OutcomeRow], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "table.jsonl"
    write_table(rows, table)
    assert learn(table, tmp_path / "out") == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("quality", "write quality=0.95 or cloud_share=0.3"),
        ("share=0.3", "write quality=0.95 or cloud_share=0.3"),
        ("cloud_share=x", "write quality=0.95 or cloud_share=0.3"),
        ("quality=1.5", "between 0 and 1"),
    ],
)
def test_a_malformed_target_is_refused(
    target: str,
    message: str,
    query_rule_table: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert learn(query_rule_table, tmp_path / "out", target=target) == 2
    assert message in capsys.readouterr().err
