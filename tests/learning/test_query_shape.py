"""The question's shape (router/query_shape.py), as plain numbers, and a policy that reads
it: written by the learner, refused when it names a shape the runtime does not know."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from router.query_shape import QUERY_SHAPE_NAMES, query_shape, query_shape_rows
from router.scorer import Policy, PolicyError


def test_the_shape_of_a_word_problem() -> None:
    query = "Tom has 3.5 apples and buys 12 more each day. What is the total after 4 days?"
    assert query_shape(query) == {
        "query_log_chars": math.log1p(len(query)),
        "query_log_numbers": math.log1p(3),
        "query_log_decimals": math.log1p(1),
        "query_log_sentences": math.log1p(2),
        "query_log_arithmetic_cues": math.log1p(2),  # "each", "total"
    }
    assert query_shape("") == dict.fromkeys(QUERY_SHAPE_NAMES, 0.0)


def test_rows_follow_the_order_asked_for() -> None:
    rows = query_shape_rows(("query_log_numbers", "query_log_chars"), ["1 2", ""])
    assert rows.shape == (2, 2)
    assert rows[0].tolist() == pytest.approx([math.log1p(2), math.log1p(3)])
    assert query_shape_rows(QUERY_SHAPE_NAMES, []).shape == (0, 5)


def test_a_learned_policy_reads_the_shape_and_names_it(query_rule_policy: Path) -> None:
    manifest = json.loads((query_rule_policy / "policy.json").read_text())
    assert manifest["scorer"]["signals"] == list(QUERY_SHAPE_NAMES)
    assert 0.0 <= Policy.load(query_rule_policy).p_edge_ok("w001 apple w002") <= 1.0


def test_a_shape_the_runtime_does_not_know_is_refused(
    query_rule_policy: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "policy"
    shutil.copytree(query_rule_policy, broken)
    manifest = json.loads((broken / "policy.json").read_text())
    manifest["scorer"]["signals"] = ["query_log_chars", "query_mood"]
    (broken / "policy.json").write_text(json.dumps(manifest))
    with pytest.raises(PolicyError, match=r"unknown scorer signals \['query_mood'\]"):
        Policy.load(broken)
