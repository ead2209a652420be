"""The replay cloud (`sllm bench replay-cloud` in a child process) for the reliability
tests: a real HTTP cloud that answers every question at once and costs no CPU."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.replay.process import ReplayCloudProcess, start_replay_cloud
from sllm.settings import CloudSettings


@pytest.fixture(scope="session")
def replay_cloud() -> Iterator[ReplayCloudProcess]:
    server = start_replay_cloud("--fallback-answer", "Paris is the capital of France.")
    yield server
    server.stop()


def replay_settings(base_url: str, **overrides: object) -> CloudSettings:
    return CloudSettings.model_validate({"base_url": base_url, "model": "replay"} | overrides)
