"""deploy/k8s, checked offline: both overlays and the monitoring kustomization render with
`kubectl kustomize`; every core object validates strictly against the Kubernetes schemas
(kubernetes-validate's bundled ones); the Prometheus Operator's objects against models
generated from its CRDs; every metric the alerts and the dashboard use is one sllm
exports; every sllm command in the manifests parses and its `--help` exits 0; every
SLLM_* variable is a settings field that takes the value given."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import promql_parser
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring
from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import BaseModel, SecretStr

import cloud_adapter.metrics
import router.metrics
from edge_worker.metrics import EdgeMetrics
from sllm.cli import build_parser
from sllm.settings import Settings

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
OVERLAYS = ("overlays/sidecar", "overlays/fleet")
# The oldest Kubernetes the manifests need (native sidecars, ContainerResource HPA metrics,
# gRPC probes) and the newest kubernetes-validate knows.
VERSIONS = ("1.30", "1.37")
IMAGE = "sllm:0.1.0"
# What stands in for a Secret's value when a manifest's variable is taken from one.
SECRET_STAND_INS = {
    "SLLM_CLOUD__API_KEY": "sk-test",
    "SLLM_ROUTER__OUTCOME_STORE": "postgresql://sllm:pw@postgres.db.svc:5432/sllm",
}
# Grafana's own variables, as Prometheus would receive them.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$namespace": "sllm"}

Manifest = dict[str, Any]


def render(directory: str) -> list[Manifest]:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl (its kustomize) is needed to render deploy/k8s"
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {directory: render(directory) for directory in (*OVERLAYS, "monitoring")}


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and name in (None, m["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec = manifest["spec"]
    template = (spec["jobTemplate"]["spec"] if manifest["kind"] == "CronJob" else spec)["template"]
    pod: dict[str, Any] = template["spec"]
    return pod


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(manifest)
    return [*spec.get("initContainers", []), *spec["containers"]]


def workloads(manifests: list[Manifest]) -> Iterator[Manifest]:
    return (m for m in manifests if m["kind"] in ("Deployment", "CronJob"))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("directory", (*OVERLAYS, "monitoring"))
def test_core_objects_validate_strictly(
    rendered: dict[str, list[Manifest]], directory: str, version: str
) -> None:
    core = [m for m in rendered[directory] if m["apiVersion"] != "monitoring.coreos.com/v1"]
    assert core
    for manifest in core:
        # Strict: no field the schema does not know. A kind without a schema raises too.
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_example_secret_validates_and_holds_every_key_the_manifests_read(
    rendered: dict[str, list[Manifest]], version: str
) -> None:
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    kubernetes_validate.validate(secret, version, strict=True)
    for directory in OVERLAYS:
        for workload in workloads(rendered[directory]):
            for container in containers(workload):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref is not None:
                        assert ref["name"] == secret["metadata"]["name"]
                        assert ref["key"] in secret["stringData"], (directory, env["name"])


def test_the_sidecar_overlay_runs_router_and_edge_as_native_sidecars_of_the_app(
    rendered: dict[str, list[Manifest]],
) -> None:
    spec = pod_spec(one(rendered["overlays/sidecar"], "Deployment", "example-app"))
    assert [c["name"] for c in spec["initContainers"]] == ["edge", "router"]
    assert all(c["restartPolicy"] == "Always" for c in spec["initContainers"])
    assert [c["name"] for c in spec["containers"]] == ["app"]
    for sidecar in spec["initContainers"]:
        assert {"startupProbe", "livenessProbe"} <= sidecar.keys()
        assert "grpc" in sidecar["startupProbe"]
    one(rendered["overlays/sidecar"], "NetworkPolicy")


def test_the_fleet_overlay_has_every_part_and_they_fit_together(
    rendered: dict[str, list[Manifest]],
) -> None:
    fleet = rendered["overlays/fleet"]
    deployment = one(fleet, "Deployment", "sllm")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod_ports = {
        port["name"]: port["containerPort"]
        for container in containers(deployment)
        for port in container.get("ports", [])
    }
    for container in containers(deployment):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                assert container[probe]["grpc"]["port"] in pod_ports.values()
    service = one(fleet, "Service", "sllm-router")
    assert service["spec"]["selector"].items() <= labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= pod_ports.keys()
    hpa = one(fleet, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["containerResource"]["container"] in {c["name"] for c in containers(deployment)}
    pdb = one(fleet, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    policy = one(fleet, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert allowed == {pod_ports[name] for name in ("grpc", "http", "metrics", "edge-metrics")}
    assert pod_ports["edge-grpc"] not in allowed, "the edge is for its own router only"
    learner = one(fleet, "CronJob", "sllm-learner")
    assert "--publish" in containers(learner)[0]["args"]
    images = {c["image"] for m in workloads(fleet) for c in containers(m)}
    assert images == {IMAGE}


def test_the_prometheus_operator_objects_validate_against_its_crds(
    rendered: dict[str, list[Manifest]],
) -> None:
    models: dict[str, type[BaseModel]] = {
        "ServiceMonitor": monitoring.ServiceMonitor,
        "PrometheusRule": monitoring.PrometheusRule,
    }
    found = [m for m in rendered["monitoring"] if m["apiVersion"] == "monitoring.coreos.com/v1"]
    assert sorted(m["kind"] for m in found) == sorted(models)
    for manifest in found:
        parsed = models[manifest["kind"]].model_validate(manifest)
        # The models ignore fields they do not know: a round trip that loses none is strict.
        assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == manifest
    monitor = one(found, "ServiceMonitor")
    service = one(rendered["overlays/fleet"], "Service", "sllm-router")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    service_ports = {port["name"] for port in service["spec"]["ports"]}
    assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= service_ports


def exported_metric_names() -> set[str]:
    """Every sample name the router (with the cloud adapter) and the edge worker expose,
    from their real registries, labelled or not, whether or not observed yet."""
    assert router.metrics.REQUESTS and cloud_adapter.metrics.CALLS  # registered on import
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    registries: tuple[CollectorRegistry, ...] = (REGISTRY, EdgeMetrics().registry)
    return {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def selected_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (it must parse)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()
    stack: list[object] = [promql_parser.parse(expr)]
    while stack:
        node = stack.pop()
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr}"
            names.add(node.name)
        elif isinstance(node, promql_parser.MatrixSelector):
            stack.append(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            stack += [node.lhs, node.rhs]
        elif isinstance(node, promql_parser.AggregateExpr):
            stack += [node.expr, node.param]
        elif isinstance(node, promql_parser.Call):
            stack += node.args
        elif isinstance(
            node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr
        ):
            stack.append(node.expr)
    return names


def test_the_alert_rules_use_only_exported_metrics(rendered: dict[str, list[Manifest]]) -> None:
    exported = exported_metric_names()
    rules = one(rendered["monitoring"], "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} >= {
        "SllmCloudBreakerOpen",
        "SllmDeadlineMisses",
        "SllmOutcomeRowsDropped",
        "SllmEdgeDown",
    }
    for rule in rules:
        used = selected_metrics(rule["expr"])
        assert used, rule["alert"]
        assert used <= exported, f"{rule['alert']}: {sorted(used - exported)} not exported"


def test_the_dashboard_uses_only_exported_metrics(rendered: dict[str, list[Manifest]]) -> None:
    exported = exported_metric_names()
    text = (K8S / "monitoring" / "sllm-dashboard.json").read_text()
    configmap = one(rendered["monitoring"], "ConfigMap", "sllm-grafana-dashboard")
    assert configmap["data"]["sllm-dashboard.json"] == text
    dashboard = json.loads(text)
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(exprs) >= 20
    used = set().union(*(selected_metrics(expr) for expr in exprs))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(METRIC, LABEL)
            metric = variable["query"]["query"].removeprefix("label_values(").split(",")[0]
            used |= selected_metrics(metric)
    assert used <= exported, f"not exported: {sorted(used - exported)}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def sllm_commands(container: dict[str, Any]) -> Iterator[list[str]]:
    """The sllm argument vectors a container runs, with Kubernetes' $(VAR) expanded from
    its env: the image's entrypoint with args, or each sllm call of a `sh -c` script."""
    env = {e["name"]: e.get("value", SECRET_STAND_INS.get(e["name"], "")) for e in container["env"]}

    def expand(word: str) -> str:
        for name, value in env.items():
            word = word.replace(f"$({name})", value)
        assert "$(" not in word, f"{word}: not defined in the container's env"
        return word

    command = container.get("command", ["sllm"])
    if command[0] == "sllm":
        yield [expand(word) for word in [*command, *container.get("args", [])]][1:]
        return
    assert command[:2] == ["sh", "-c"], command
    lexer = shlex.shlex(command[2], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True  # words as the shell splits them; ; && || on their own
    words = list(lexer)
    starts = [i for i, word in enumerate(words) if word == "sllm"]
    assert starts, command
    for start in starts:
        end = next((i for i in range(start, len(words)) if words[i] in (";", "&&", "||")), None)
        yield [expand(word) for word in words[start + 1 : end]]


def test_every_sllm_command_in_the_manifests_exists(rendered: dict[str, list[Manifest]]) -> None:
    commands = [
        argv
        for directory in OVERLAYS
        for workload in workloads(rendered[directory])
        for container in containers(workload)
        for argv in sllm_commands(container)
    ]
    assert {tuple(argv[:2]) for argv in commands} >= {
        ("router", "serve"),
        ("edge", "serve"),
        ("ask", "--target"),
    }
    assert any(argv[0] == "learn" for argv in commands)
    for argv in commands:
        build_parser().parse_args(argv)  # exits (status 2) on an unknown command or flag
    for words in {tuple(w for w in argv[:2] if not w.startswith("-")) for argv in commands}:
        result = subprocess.run(
            [sys.executable, "-m", "sllm", *words, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (words, result.stderr)


def field_value(settings: BaseModel, path: list[str]) -> object:
    value: object = settings
    for name in path:
        assert isinstance(value, BaseModel), path
        assert name in type(value).model_fields, f"no settings field {'.'.join(path)}"
        value = getattr(value, name)
    return value


def test_every_sllm_variable_is_a_settings_field_that_takes_its_value(
    rendered: dict[str, list[Manifest]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./sllm.toml
    monkeypatch.delenv("SLLM_CONFIG", raising=False)
    checked = 0
    for directory in OVERLAYS:
        for workload in workloads(rendered[directory]):
            for container in containers(workload):
                variables = {
                    e["name"]: e.get("value", SECRET_STAND_INS.get(e["name"]))
                    for e in container.get("env", [])
                    if e["name"].startswith("SLLM_")
                }
                with monkeypatch.context() as env:
                    for name, value in variables.items():
                        assert value is not None, f"{name}: no stand-in for its Secret"
                        env.setenv(name, value)
                    settings = Settings()
                for name, value in variables.items():
                    path = name.removeprefix("SLLM_").lower().split("__")
                    actual = field_value(settings, path)
                    if isinstance(actual, SecretStr):
                        actual = actual.get_secret_value()
                    elif isinstance(actual, bool):
                        actual = str(actual).lower()
                    assert str(actual) == value, f"{directory} {container['name']} {name}"
                    checked += 1
    assert checked >= 20
