"""The gRPC API is guarded like a public API: `buf lint` (buf.yaml's STANDARD rules, with
the exceptions it documents) and `buf breaking` against the released API
(proto/released/v1.binpb, FILE rules) pass; and the guard fails when it should, on a
copy of proto/ with a lint error or a breaking change.

buf is pinned in tools/buf/package-lock.json and installed by `npm ci --prefix tools/buf`
(.ci/run does it). Without it these tests fail, saying so: nothing is skipped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "tools" / "buf" / "node_modules" / ".bin" / "buf"
BASELINE = "proto/released/v1.binpb"
_INSTALL = "install it with `npm ci --prefix tools/buf` (node and npm: apt-get install npm)"

# buf lint's STANDARD findings that buf.yaml exempts, each one: the exemptions are per
# file and rule, so without this list a new RPC in router.proto named against the rules
# would pass unseen. Why each is kept: the comments in buf.yaml.
DOCUMENTED_EXCEPTIONS = {
    ("SERVICE_SUFFIX", 'Service name "EdgeWorker" should be suffixed with "Service".'),
    ("SERVICE_SUFFIX", 'Service name "Router" should be suffixed with "Service".'),
    (
        "RPC_REQUEST_STANDARD_NAME",
        'RPC request type "EdgeGenerateRequest" should be named "GenerateRequest" or '
        '"EdgeWorkerGenerateRequest".',
    ),
    (
        "RPC_RESPONSE_STANDARD_NAME",
        'RPC response type "EdgeGenerateEvent" should be named "GenerateResponse" or '
        '"EdgeWorkerGenerateResponse".',
    ),
    (
        "RPC_REQUEST_STANDARD_NAME",
        'RPC request type "EdgeInfoRequest" should be named "InfoRequest" or '
        '"EdgeWorkerInfoRequest".',
    ),
    (
        "RPC_RESPONSE_STANDARD_NAME",
        'RPC response type "EdgeInfo" should be named "InfoResponse" or "EdgeWorkerInfoResponse".',
    ),
    (
        "RPC_REQUEST_STANDARD_NAME",
        'RPC request type "RouteRequest" should be named "GenerateRequest" or '
        '"RouterGenerateRequest".',
    ),
    (
        "RPC_RESPONSE_STANDARD_NAME",
        'RPC response type "RouteResponse" should be named "GenerateResponse" or '
        '"RouterGenerateResponse".',
    ),
    (
        "RPC_REQUEST_STANDARD_NAME",
        'RPC request type "RouteRequest" should be named "GenerateStreamRequest" or '
        '"RouterGenerateStreamRequest".',
    ),
    (
        "RPC_RESPONSE_STANDARD_NAME",
        'RPC response type "RouteEvent" should be named "GenerateStreamResponse" or '
        '"RouterGenerateStreamResponse".',
    ),
    (
        "RPC_RESPONSE_STANDARD_NAME",
        'RPC response type "PolicyInfo" should be named "GetPolicyResponse" or '
        '"RouterGetPolicyResponse".',
    ),
    (
        "RPC_RESPONSE_STANDARD_NAME",
        'RPC response type "PolicyInfo" should be named "RollbackPolicyResponse" or '
        '"RouterRollbackPolicyResponse".',
    ),
    (
        "RPC_REQUEST_RESPONSE_UNIQUE",
        '"sllm.v1.RouteRequest" is used as the request or response type for multiple RPCs.',
    ),
    (
        "RPC_REQUEST_RESPONSE_UNIQUE",
        '"sllm.v1.PolicyInfo" is used as the request or response type for multiple RPCs.',
    ),
    (
        "ENUM_ZERO_VALUE_SUFFIX",
        'Enum zero value name "ROUTE_HINT_AUTO" should be suffixed with "_UNSPECIFIED".',
    ),
}


def _buf(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not BUF.is_file():
        pytest.fail(f"buf is not installed ({BUF.relative_to(ROOT)}): {_INSTALL}")
    return subprocess.run([str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _copy_of_the_api(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    return tmp_path


def _standard_findings(cwd: Path) -> set[tuple[str, str]]:
    """buf lint's STANDARD findings with none of buf.yaml's exceptions."""
    config = {"version": "v2", "modules": [{"path": "proto"}], "lint": {"use": ["STANDARD"]}}
    result = _buf(cwd, "lint", "--config", json.dumps(config), "--error-format", "json")
    assert result.returncode in (0, 100), result.stdout + result.stderr
    findings = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {(finding["type"], finding["message"]) for finding in findings}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name} no longer has {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))


def test_buf_is_the_pinned_version() -> None:
    lock = json.loads((ROOT / "tools" / "buf" / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/@bufbuild/buf"]["version"]
    result = _buf(ROOT, "--version")
    assert result.returncode == 0, result.stdout + result.stderr
    installed = result.stdout.strip()
    assert installed == pinned, f"buf {installed} is not the pinned {pinned}: {_INSTALL}"


def test_api_passes_buf_lint() -> None:
    result = _buf(ROOT, "lint")
    assert result.returncode == 0, f"buf lint:\n{result.stdout}{result.stderr}"


def test_lint_exceptions_cover_exactly_the_documented_elements() -> None:
    assert _standard_findings(ROOT) == DOCUMENTED_EXCEPTIONS


def test_api_has_no_breaking_change_since_the_release() -> None:
    result = _buf(ROOT, "breaking", "--against", BASELINE)
    assert result.returncode == 0, (
        f"buf breaking against {BASELINE} (the released API):\n{result.stdout}{result.stderr}"
    )


def test_breaking_change_is_reported(tmp_path: Path) -> None:
    root = _copy_of_the_api(tmp_path)
    router = root / "proto" / "sllm" / "v1" / "router.proto"
    _edit(router, "string tenant = 8;", "string tenant = 18;")
    result = _buf(root, "breaking", "--against", BASELINE)
    assert result.returncode != 0, result.stdout + result.stderr
    assert (
        'Previously present field "8" with name "tenant" on message "RouteRequest" was deleted.'
        in result.stdout
    ), result.stdout


def test_moving_a_message_to_another_file_is_reported(tmp_path: Path) -> None:
    # Wire- and JSON-compatible, but the generated Python moves (router_pb2.StreamReset
    # becomes common_pb2.StreamReset): why buf.yaml checks the FILE rules.
    root = _copy_of_the_api(tmp_path)
    v1 = root / "proto" / "sllm" / "v1"
    message = "message StreamReset {\n  string reason = 1;\n}\n"
    _edit(v1 / "router.proto", message, "")
    (v1 / "common.proto").write_text((v1 / "common.proto").read_text() + "\n" + message)
    result = _buf(root, "breaking", "--against", BASELINE)
    assert result.returncode != 0, result.stdout + result.stderr
    assert 'Previously present message "StreamReset" was deleted from file.' in result.stdout, (
        result.stdout
    )


def test_lint_error_is_reported(tmp_path: Path) -> None:
    root = _copy_of_the_api(tmp_path)
    common = root / "proto" / "sllm" / "v1" / "common.proto"
    _edit(common, "string content = 2;", "string content = 2;\n  string BadName = 3;")
    result = _buf(root, "lint")
    assert result.returncode != 0, result.stdout + result.stderr
    assert 'Field name "BadName" should be lower_snake_case' in result.stdout, result.stdout


def test_new_rpc_against_the_rules_in_an_exempt_file_is_reported(tmp_path: Path) -> None:
    root = _copy_of_the_api(tmp_path)
    router = root / "proto" / "sllm" / "v1" / "router.proto"
    _edit(
        router,
        "rpc Feedback(FeedbackRequest) returns (FeedbackResponse);",
        "rpc Feedback(FeedbackRequest) returns (FeedbackResponse);\n"
        "  rpc Explain(RouteResponse) returns (DecisionRecord);",
    )
    assert _buf(root, "lint").returncode == 0, "buf.yaml's per-file exemptions cover it"
    unexpected = _standard_findings(root) - DOCUMENTED_EXCEPTIONS
    assert (
        "RPC_REQUEST_STANDARD_NAME",
        'RPC request type "RouteResponse" should be named '
        '"ExplainRequest" or "RouterExplainRequest".',
    ) in unexpected, unexpected
