"""`sllm doctor` through the command, with real processes: all OK on this machine with a
reachable cloud; a taken port, an unreachable cloud and an unwritable outcome log each
named with the setting to change (exit 1); an engine that cannot load or that crashes is
reported, not suffered; and `sllm up` with a crashing engine refuses with the advice
(exit 2) before it starts anything."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge_worker.probe import CHILD_COMMAND_ENV
from tests.fixtures.cloud import StandInServer, free_port

# We cannot make llama.cpp crash on this CPU (the crash needs certain builds on Xeons with
# AMX), so the probe's child is replaced by one that dies the same way.
SEGFAULTING_CHILD = shlex.join(
    [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
)


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """Free ports and a fresh outcome log, so the machine's other users do not matter;
    `settings` override them."""
    ports = {
        "SLLM_ROUTER__PORT": str(free_port()),
        "SLLM_ROUTER__METRICS_PORT": str(free_port()),
        "SLLM_ROUTER__HTTP_PORT": str(free_port()),
        "SLLM_CLOUD__STANDIN_PORT": str(free_port()),
        "SLLM_ROUTER__OUTCOME_DB": str(tmp_path / "log" / "outcomes.sqlite3"),
    }
    return {**os.environ, **ports, **settings}


def _sllm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sllm", *args], env=env, capture_output=True, text=True, timeout=180
    )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_all_ok_with_a_reachable_cloud(standin_server: StandInServer, tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        SLLM_CLOUD__BASE_URL=standin_server.base_url,
        SLLM_CLOUD__MODEL=standin_server.model,
    )
    doctor = _sllm(env, "doctor")
    lines = doctor.stdout.splitlines()
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert [line.split()[:2] for line in lines] == [
        ["ok", name]
        for name in (
            *("python", "packages", "lock", "cpu", "llama.cpp"),
            *("engine", "cloud", "ports", "outcomes", "access"),
        )
    ]
    assert "decoded 8 tokens in a child process" in lines[5]
    assert f"{standin_server.base_url} model {standin_server.model} answered" in lines[6]


def test_each_failure_names_the_setting_to_change(tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    # A regular file where the outcome log's directory should be: unwritable, even to root.
    (tmp_path / "file").write_text("")
    env = _env(
        tmp_path,
        SLLM_ROUTER__PORT=str(port),
        SLLM_CLOUD__BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
        SLLM_ROUTER__OUTCOME_DB=str(tmp_path / "file" / "outcomes.sqlite3"),
    )
    with taken:
        doctor = _sllm(env, "doctor", "--json")
    assert doctor.returncode == 1, doctor.stderr
    failed = {check["name"]: check for check in json.loads(doctor.stdout) if not check["ok"]}
    assert sorted(failed) == ["cloud", "outcomes", "ports"]
    assert failed["ports"]["detail"] == f"127.0.0.1:{port} is taken"
    assert failed["ports"]["advice"] == "set router.port (SLLM_ROUTER__PORT)"
    assert "refused the connection" in failed["cloud"]["detail"]
    assert "SLLM_CLOUD__BASE_URL" in failed["cloud"]["detail"]
    assert failed["outcomes"]["detail"] == f"cannot create {tmp_path / 'file'}: File exists"
    assert "SLLM_ROUTER__OUTCOME_DB" in failed["outcomes"]["advice"]


def test_a_model_file_that_is_not_gguf_is_a_load_error_with_advice(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_text("not a model")
    doctor = _sllm(_env(tmp_path, SLLM_EDGE__MODEL_PATH=str(model)), "doctor")
    assert doctor.returncode == 1
    assert (
        f"FAIL  engine     not a GGUF model file (bad magic bytes): {model}: "
        "set edge.model_path (SLLM_EDGE__MODEL_PATH) to a GGUF file\n"
    ) in doctor.stdout


def test_an_engine_that_crashes_is_reported_with_the_advice(tmp_path: Path) -> None:
    doctor = _sllm(_env(tmp_path, **{CHILD_COMMAND_ENV: SEGFAULTING_CHILD}), "doctor")
    assert doctor.returncode == 1
    assert (
        "FAIL  engine     the llama.cpp engine crashed (SIGSEGV) on a multi-token prompt: "
        'set edge.extra_buffers = "off" (SLLM_EDGE__EXTRA_BUFFERS=off) or install the tested '
        "llama-cpp-python version from requirements.lock\n"
    ) in doctor.stdout
    # The doctor itself went on to the remaining checks.
    assert "access" in doctor.stdout.splitlines()[-1]


def test_sllm_up_refuses_to_start_on_an_engine_that_crashes(tmp_path: Path) -> None:
    env = _env(tmp_path, **{CHILD_COMMAND_ENV: SEGFAULTING_CHILD})
    up = _sllm(env, "up")
    assert up.returncode == 2
    assert "crashed (SIGSEGV)" in up.stderr
    assert "SLLM_EDGE__EXTRA_BUFFERS=off" in up.stderr
    assert up.stdout == ""
    ports = ("SLLM_ROUTER__PORT", "SLLM_ROUTER__METRICS_PORT", "SLLM_CLOUD__STANDIN_PORT")
    assert not any(_listening(int(env[name])) for name in ports)
    assert not (tmp_path / "log").exists()
