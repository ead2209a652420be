"""Settings: defaults with no file, TOML file, environment overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sllm.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLLM_CONFIG", raising=False)


def test_defaults_work_with_no_file() -> None:
    settings = Settings()
    assert settings.router.port == 50051
    assert settings.edge.model_path is None
    assert settings.cloud.api_key is None


def test_toml_file_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text('[router]\nport = 6000\nedge_target = "10.0.0.1:1"\n[cloud]\nmodel = "m"\n')
    monkeypatch.setenv("SLLM_CONFIG", str(config))
    monkeypatch.setenv("SLLM_ROUTER__PORT", "7000")
    monkeypatch.setenv("SLLM_CLOUD__API_KEY", "sk-secret")
    settings = Settings()
    assert settings.router.port == 7000  # environment beats the file
    assert settings.router.edge_target == "10.0.0.1:1"
    assert settings.cloud.model == "m"
    assert settings.cloud.api_key is not None
    assert "sk-secret" not in repr(settings)


def test_sllm_toml_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "sllm.toml").write_text("[edge]\nqueue_size = 3\n")
    assert Settings().edge.queue_size == 3


def test_missing_named_config_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLLM_CONFIG", "/nonexistent/sllm.toml")
    with pytest.raises(FileNotFoundError, match="SLLM_CONFIG"):
        Settings()


def test_invalid_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLLM_EDGE__QUEUE_SIZE", "-1")
    with pytest.raises(ValidationError, match="queue_size"):
        Settings()
