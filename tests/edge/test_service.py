"""Health, reflection, metrics, and start-up failures of `sllm edge serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.edge.calls import ask, edge_stub, generate
from tests.fixtures.edge import ROOT, EdgeWorkerProcess


@pytest.mark.parametrize("service", ["", "sllm.v1.EdgeWorker"])
def test_health_reports_serving(edge_server: EdgeWorkerProcess, service: str) -> None:
    with grpc.insecure_channel(edge_server.target) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=10
        )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(edge_server: EdgeWorkerProcess) -> None:
    with grpc.insecure_channel(edge_server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    names = {service.name for service in responses[0].list_services_response.service}
    assert "sllm.v1.EdgeWorker" in names
    assert "grpc.health.v1.Health" in names


def test_metrics_count_requests_tokens_and_exit_reasons(edge_server: EdgeWorkerProcess) -> None:
    with edge_stub(edge_server.target) as stub:
        result = generate(stub, ask("What is 2 + 3?", max_tokens=8))
    url = f"http://127.0.0.1:{edge_server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    assert 'sllm_edge_requests_total{outcome="ok"}' in text
    assert 'sllm_edge_tokens_total{kind="completion"}' in text
    reason = result.exit_reason.removeprefix("EXIT_REASON_")
    assert f'sllm_edge_exit_reasons_total{{exit_reason="{reason}"}}' in text
    assert "sllm_edge_queue_depth 0.0" in text
    assert "sllm_edge_decode_tokens_per_second_count" in text


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    """`sllm edge serve ARGS`, for start-ups that must fail (else it would not return)."""
    return subprocess.run(
        [sys.executable, "-m", "sllm", "edge", "serve", "--metrics-port", "0", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_model_file_is_a_clear_startup_error(tmp_path: Path) -> None:
    result = _serve("--model", str(tmp_path / "absent.gguf"), "--port", "0")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"sllm edge serve: model file not found: {tmp_path / 'absent.gguf'}"
    ]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a model at all", "not a GGUF model file"),
        (b"GGUF" + b"\x00" * 64, "llama.cpp could not load"),
    ],
)
def test_corrupt_model_file_is_a_clear_startup_error(
    tmp_path: Path, content: bytes, says: str
) -> None:
    model = tmp_path / "corrupt.gguf"
    model.write_bytes(content)
    result = _serve("--model", str(model), "--port", "0")
    assert result.returncode != 0
    *before, last = result.stderr.strip().splitlines()
    assert says in last
    # Before it, only llama.cpp's own account of the failure, as JSON log lines.
    assert all(json.loads(line)["event"] == "llama_cpp.log" for line in before)


def test_taken_port_is_a_clear_startup_error(edge_server: EdgeWorkerProcess) -> None:
    result = _serve("--port", str(edge_server.port))
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{edge_server.port}" in result.stderr
