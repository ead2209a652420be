"""Logging: JSON lines with secrets redacted, written to the stderr of the moment."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest
import structlog

from sllm.logs import configure_logging
from sllm.settings import LogSettings


@pytest.fixture(autouse=True)
def _default_logging_afterwards() -> Iterator[None]:
    yield
    configure_logging(LogSettings(format="json"))


def test_json_lines_redact_secrets() -> None:
    out = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=out)
    structlog.get_logger().info("cloud.call", api_key="sk-secret", model="m")
    line = json.loads(out.getvalue())
    assert line["event"] == "cloud.call"
    assert line["api_key"] == "***"
    assert line["model"] == "m"
    assert line["level"] == "info"


def test_a_replaced_and_closed_stderr_does_not_break_logging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(LogSettings(format="json"))
    first.close()  # as pytest's capture does after a test that configured logging
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    structlog.get_logger().warning("edge.unavailable")
    assert json.loads(second.getvalue())["event"] == "edge.unavailable"
