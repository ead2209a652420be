"""`sllm cloud check` and `sllm cloud standin`, run as commands."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from sllm import children
from tests.cloud.fault_proxy import Delay, FaultProxy
from tests.fixtures.cloud import StandInServer, free_port


async def _sllm(*args: str, cwd: Path, **env: str) -> tuple[int, str]:
    """Exit status and stdout; stderr (the JSON log lines) goes to `cwd`/stderr.log."""
    # Run without blocking the event loop: the fault proxy serves from it meanwhile.
    with (cwd / "stderr.log").open("ab") as stderr:
        process = await children.create_subprocess_exec(
            sys.executable, "-m", "sllm", *args,
            cwd=cwd,
            env=os.environ | env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode()


async def test_check_prints_model_latency_tokens_and_cost(
    standin_server: StandInServer, tmp_path: Path
) -> None:
    code, out = await _sllm(
        "cloud", "check",
        cwd=tmp_path,
        SLLM_CLOUD__BASE_URL=standin_server.base_url,
        SLLM_CLOUD__PRICE_OUTPUT_PER_MTOK="1000000",
    )  # fmt: skip

    assert code == 0, out
    assert f"model     {standin_server.model}" in out
    assert " ms" in out
    tokens = re.search(r"tokens +(\d+) prompt \+ (\d+) completion", out)
    assert tokens is not None, out
    assert int(tokens[1]) > 0 and 0 < int(tokens[2]) <= 8
    # A million dollars per million output tokens: one dollar per completion token.
    assert f"cost      ${int(tokens[2]):.6f}" in out


async def test_check_diagnoses_a_wrong_port(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, out = await _sllm("cloud", "check", cwd=tmp_path, SLLM_CLOUD__BASE_URL=url)

    assert code == 1
    assert out.startswith("FAILED  bad URL or nothing listening")
    assert "refused the connection" in out


async def test_check_diagnoses_a_wrong_model_name(
    standin_server: StandInServer, tmp_path: Path
) -> None:
    code, out = await _sllm(
        "cloud", "check", "--model", "gpt-9",
        cwd=tmp_path,
        SLLM_CLOUD__BASE_URL=standin_server.base_url,
    )  # fmt: skip

    assert code == 1
    assert "model not found: 'gpt-9'" in out
    assert f"({standin_server.model})" in out


async def test_check_diagnoses_a_url_without_the_api_path(
    standin_server: StandInServer, tmp_path: Path
) -> None:
    url = standin_server.base_url.removesuffix("/v1")
    code, out = await _sllm("cloud", "check", cwd=tmp_path, SLLM_CLOUD__BASE_URL=url)

    assert code == 1
    assert "bad URL" in out and "end in /v1" in out


async def test_check_diagnoses_a_bad_key(keyed_standin: StandInServer, tmp_path: Path) -> None:
    code, out = await _sllm(
        "cloud", "check",
        cwd=tmp_path,
        SLLM_CLOUD__BASE_URL=keyed_standin.base_url,
        SLLM_CLOUD__API_KEY="wrong-key",
    )  # fmt: skip

    assert code == 1
    assert "bad key" in out and "rejected the API key" in out
    # The key is never printed nor logged.
    assert "wrong-key" not in out
    assert "cloud.call_failed" in (tmp_path / "stderr.log").read_text()
    assert "wrong-key" not in (tmp_path / "stderr.log").read_text()


async def test_check_diagnoses_a_timeout(proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.inject(Delay(30), Delay(30))
    code, out = await _sllm(
        "cloud", "check", "--timeout", "1", cwd=tmp_path, SLLM_CLOUD__BASE_URL=proxy.base_url
    )

    assert code == 1
    assert out.startswith("FAILED  timeout: no answer")


async def test_standin_command_serves_until_terminated(tmp_path: Path) -> None:
    port = free_port()
    process = await children.create_subprocess_exec(
        sys.executable, "-m", "sllm", "cloud", "standin", "--port", str(port),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        ready = await asyncio.wait_for(process.stdout.readline(), timeout=120)
        assert b"NOT a cloud model" in ready
        assert f"http://127.0.0.1:{port}/v1".encode() in ready

        code, out = await _sllm(
            "cloud", "check", cwd=tmp_path, SLLM_CLOUD__BASE_URL=f"http://127.0.0.1:{port}/v1"
        )
        assert code == 0, out
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
    # The server went with it: nothing listens on the port any more.
    code, out = await _sllm(
        "cloud", "check", cwd=tmp_path, SLLM_CLOUD__BASE_URL=f"http://127.0.0.1:{port}/v1"
    )
    assert "refused the connection" in out
