"""`router.scorer.Policy`: the shipped default policy, and bad directories refused at load
with a message that says what to fix."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from router.scorer import Policy, PolicyError, default_policy_dir
from router.signals import EdgeSignals


@pytest.fixture(scope="module")
def default_policy() -> Policy:
    return Policy.load(default_policy_dir())


def test_the_default_policy_loads_and_scores(default_policy: Policy) -> None:
    assert default_policy.version
    assert 0.0 <= default_policy.pre_generation_threshold <= 1.0
    assert 0.0 <= default_policy.cascade_threshold <= 1.0
    assert default_policy.has_cascade
    assert default_policy.manifest.training_data_sha256
    for query in ["What is 2 + 2?", "", "25ºC ünïcödé 😀", "word " * 5000]:
        assert 0.0 <= default_policy.p_edge_ok(query) <= 1.0
    signals = EdgeSignals(mean_logprob=-0.3, confidence_score=0.8, exit_reason="SETTLED")
    after = default_policy.p_edge_ok_after("What is 2 + 2?", "2 + 2 = 4\n#### 4", signals)
    assert 0.0 <= after <= 1.0


def test_non_finite_signals_still_give_a_probability(default_policy: Policy) -> None:
    signals = EdgeSignals(mean_logprob=float("-inf"), min_logprob=float("nan"))
    assert 0.0 <= default_policy.p_edge_ok_after("What is 2 + 2?", "4", signals) <= 1.0


def test_the_default_policy_reads_the_edge_confidence_after_generation(
    default_policy: Policy,
) -> None:
    # The shipped policy was learned from the bundled edge model's own answers, so its
    # cascade model takes the edge's per-token statistics as signals.
    assert "mean_logprob" in default_policy.cascade_signals
    query, answer = "Is the sky blue?", "Yes"
    sure = EdgeSignals(
        mean_logprob=-0.05,
        min_logprob=-0.1,
        confidence_score=0.95,
        answer_found=True,
        exit_reason="SETTLED",
        completion_tokens=2,
    )
    unsure = EdgeSignals(
        mean_logprob=-3.0,
        min_logprob=-9.0,
        confidence_score=0.05,
        answer_found=True,
        exit_reason="STOP",
        completion_tokens=2,
    )
    assert default_policy.p_edge_ok_after(query, answer, sure) != pytest.approx(
        default_policy.p_edge_ok_after(query, answer, unsure), abs=1e-4
    )


def test_batch_scores_equal_single_scores(default_policy: Policy) -> None:
    queries = ["What is 2 + 2?", "Explain the French revolution in detail.", ""]
    batch = default_policy.p_edge_ok_many(queries)
    assert batch.tolist() == pytest.approx([default_policy.p_edge_ok(q) for q in queries], abs=1e-6)


def test_one_policy_serves_concurrent_callers(default_policy: Policy) -> None:
    queries = [f"question number {i} about {'math' if i % 2 else 'history'}" for i in range(64)]
    expected = [default_policy.p_edge_ok(q) for q in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(default_policy.p_edge_ok, queries)) == expected


def test_a_policy_without_cascade_falls_back_to_the_edge_confidence(tmp_path: Path) -> None:
    directory = _copy_default(tmp_path, lambda m: m.update(cascade=None))
    policy = Policy.load(directory)
    assert not policy.has_cascade
    assert policy.p_edge_ok_after("q", "a", EdgeSignals(confidence_score=0.25)) == 0.25


def _copy_default(tmp_path: Path, edit: object) -> Path:
    directory = tmp_path / "policy"
    shutil.copytree(default_policy_dir(), directory)
    manifest = json.loads((directory / "policy.json").read_text())
    edit(manifest)  # type: ignore[operator]
    (directory / "policy.json").write_text(json.dumps(manifest))
    return directory


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format=2), "format"),
        (lambda m: m.update(pre_generation_threshold=1.5), "pre_generation_threshold"),
        (lambda m: m.pop("version"), "version"),
        (
            lambda m: m["scorer"].update(file="missing.onnx"),
            "cannot read model file named in policy.json 'missing.onnx'",
        ),
        (lambda m: m["scorer"].update(file="../outside.onnx"), "must be a file name inside"),
        (lambda m: m["scorer"].update(file="/etc/passwd"), "must be a file name inside"),
        (lambda m: m["scorer"].update(file="cascade.onnx"), "inputs are"),
        (
            lambda m: m["cascade"].update(signals=["text_log_chars", "telepathy"]),
            "unknown cascade signals ['telepathy']",
        ),
        (lambda m: m["scorer"].update(file="policy.json"), "not a model onnxruntime can run"),
    ],
)
def test_a_bad_policy_directory_is_refused_with_what_to_fix(
    edit: object, message: str, tmp_path: Path
) -> None:
    directory = _copy_default(tmp_path, edit)
    (tmp_path / "outside.onnx").write_bytes((directory / "scorer.onnx").read_bytes())
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("(", r"\(")):
        Policy.load(directory)


def test_missing_or_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nowhere: cannot read policy\.json"):
        Policy.load(tmp_path / "nowhere")
    (tmp_path / "policy.json").write_text("{not json")
    with pytest.raises(PolicyError, match=r"policy\.json: invalid"):
        Policy.load(tmp_path)


def test_a_load_during_a_directory_swap_sees_one_policy_whole(
    tmp_path: Path, query_rule_policy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `sllm learn` replaces a policy directory by renames while a router may be loading
    # it: every load must pair a manifest with its own models, never the other's. The
    # swaps here come far faster than any learner's, to hit loads in flight.
    import threading

    from router.learning import train

    monkeypatch.setattr(train, "RETIRED_GRACE_S", 0.01)
    sources = [default_policy_dir(), query_rule_policy]
    expected = {Policy.load(s).version: Policy.load(s).p_edge_ok("w001 apple") for s in sources}
    assert len(set(expected.values())) == 2
    live = tmp_path / "live"
    shutil.copytree(sources[0], live)
    stop = threading.Event()
    swaps = 0

    def swap() -> None:
        nonlocal swaps
        while not stop.is_set():
            staging = tmp_path / f".staging-{swaps}"
            shutil.copytree(sources[(swaps + 1) % 2], staging)
            train._install(staging, live)
            swaps += 1

    swapper = threading.Thread(target=swap)
    swapper.start()
    seen = []
    try:
        for _ in range(100):
            try:
                policy = Policy.load(live)
            except PolicyError:
                continue  # files removed under a load five times running: refused, clearly
            seen.append(policy.version)
            assert policy.p_edge_ok("w001 apple") == expected[policy.version]
    finally:
        stop.set()
        swapper.join()
    assert swaps > 10
    assert len(set(seen)) == 2  # loads succeeded on both sides of the swaps
