"""The generated-code check must catch a .proto change that was not regenerated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sllm import codegen


def test_current_code_is_not_stale() -> None:
    assert codegen.stale_files() == []


def test_changed_proto_is_reported_stale(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copytree(codegen.PROTO_DIR, tmp_path / "proto")
    edge = tmp_path / "proto" / "sllm" / "v1" / "edge.proto"
    edge.write_text(edge.read_text() + "\nmessage AddedButNotGenerated {}\n")
    monkeypatch.setattr(codegen, "PROTO_DIR", tmp_path / "proto")
    assert codegen.stale_files() == ["sllm/v1/edge.proto"]
