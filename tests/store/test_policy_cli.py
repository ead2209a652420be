"""`sllm policy publish|list|activate` on a store (SQLite here: the same code as
PostgreSQL's, tests/store/test_postgres_log.py), and a broken directory never published."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from router.scorer import default_policy_dir
from router.store import open_store
from sllm.cli import main


def _copy(tmp_path: Path, version: str) -> Path:
    directory = tmp_path / version
    shutil.copytree(default_policy_dir(), directory)
    manifest = json.loads((directory / "policy.json").read_text()) | {"version": version}
    (directory / "policy.json").write_text(json.dumps(manifest))
    return directory


def test_publish_list_and_activate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    for version in ("v1", "v2"):
        assert main(["policy", "publish", str(_copy(tmp_path, version)), "--store", store]) == 0
    broken = _copy(tmp_path, "v3")
    (broken / "scorer.onnx").write_bytes(b"not a model")
    assert main(["policy", "publish", str(broken), "--store", store]) == 2
    assert "not a model onnxruntime can run" in capsys.readouterr().err
    assert main(["policy", "activate", "v1", "--store", store]) == 0
    assert main(["policy", "activate", "v9", "--store", store]) == 2
    assert main(["policy", "list", "--store", store]) == 0
    listed = capsys.readouterr().out.splitlines()[-2:]
    assert listed[0].split()[:2] == ["#2", "v2"]
    assert listed[1].split()[:3] == ["*", "#1", "v1"]
    opened = open_store(tmp_path / "log.sqlite3")
    active = opened.active_policy()
    opened.close()
    assert active is not None and active.version == "v1"
