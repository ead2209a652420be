"""The deployment files stay in step with the settings they configure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_example_configuration_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from sllm.settings import Settings

    monkeypatch.setenv("SLLM_CONFIG", str(DEPLOY / "sllm.toml"))
    settings = Settings()
    assert settings.cloud.base_url == "https://api.openai.com/v1"
    assert settings.router.tenant_budget_usd == 5.0
    assert settings.router.edge_target == f"{settings.edge.host}:{settings.edge.port}"


@pytest.mark.parametrize("unit", sorted((DEPLOY / "systemd").glob("*.service")), ids=str)
def test_each_unit_runs_an_sllm_command_that_exists(unit: Path) -> None:
    (exec_start,) = [
        line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")
    ]
    command = exec_start.removeprefix("ExecStart=").split()[1:]
    result = subprocess.run(
        [sys.executable, "-m", "sllm", *command, "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
