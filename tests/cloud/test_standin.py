"""The cloud stand-in (the real llama_cpp.server) follows edge.extra_buffers: the same
llama.cpp on the same CPU, so it must avoid the same crash."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from cloud_adapter import standin
from cloud_adapter.standin_server import NO_EXTRA_BUFFERS
from tests.fixtures.cloud import free_port


def test_a_stand_in_without_extra_buffers_serves_completions(tmp_path: Path) -> None:
    with (tmp_path / "standin.log").open("wb") as output:
        server = standin.start(port=free_port(), n_threads=1, output=output, extra_buffers="off")
    try:
        assert NO_EXTRA_BUFFERS in server.process.args
        body = {
            "model": server.model,
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 4,
        }
        request = urllib.request.Request(
            f"{server.base_url}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
        assert answer["choices"][0]["message"]["role"] == "assistant"
        assert answer["usage"]["completion_tokens"] >= 1
    finally:
        server.stop()


def test_the_stand_in_command_asks_for_no_extra_buffers_only_when_they_are_off() -> None:
    path = Path("model.gguf")
    assert NO_EXTRA_BUFFERS in standin.server_command(
        path, port=1, model_alias="m", extra_buffers=False
    )
    assert NO_EXTRA_BUFFERS not in standin.server_command(
        path, port=1, model_alias="m", extra_buffers=True
    )
