"""`sllm doctor`: checks an installation the way a user would ask about it, one answer
each: versions against the tested lock, the CPU and the llama.cpp build, the engine
probe, the cloud endpoint, the ports `sllm up` listens on, the outcome log, and who may
use the router (tokens, TLS). No line shows a secret: keys and tokens are never read out."""

from __future__ import annotations

import asyncio
import errno
import os
import platform
import re
import socket
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from cloud_adapter import standin
from cloud_adapter.check import CheckFailed, check
from edge_worker.probe import probe_engine
from router.auth.access import Access
from router.launcher import cloud_is_configured
from router.server import loopback
from router.store import StoreError, open_store
from sllm.check import Check
from sllm.lock import LOCK_FILE
from sllm.lock import pins as lock_pins
from sllm.settings import Settings, TlsSettings
from sllm.tls import server_context

KEY_PACKAGES = ("llama-cpp-python", "grpcio", "protobuf", "onnxruntime", "openai", "numpy")
CLOUD_TIMEOUT_S = 20.0
_CPU_FLAGS = re.compile(r"^(avx2|avx512f|amx_\w+)$")


def run_checks(settings: Settings, *, edge_process: bool) -> Iterator[Check]:
    """One at a time, so each line can be shown as soon as it is known."""
    yield check_python()
    yield check_packages()
    yield check_lock(LOCK_FILE)
    yield check_cpu(Path("/proc/cpuinfo"))
    yield check_llama_build()
    yield probe_engine(settings.edge)
    yield check_cloud(settings)
    yield check_ports(settings, edge_process=edge_process)
    yield check_outcome_log(settings)
    yield check_access(settings)


def check_python() -> Check:
    return Check(
        "python", True, f"{platform.python_version()} ({platform.python_implementation()})"
    )


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_packages() -> Check:
    versions = {name: _installed(name) for name in KEY_PACKAGES}
    missing = [name for name, version in versions.items() if version is None]
    detail = ", ".join(f"{name} {version}" for name, version in versions.items() if version)
    if missing:
        advice = "pip install -c requirements.lock ."
        return Check("packages", False, f"not installed: {', '.join(missing)}", advice)
    return Check("packages", True, detail)


def check_lock(lock: Path) -> Check:
    if not lock.is_file():
        return Check(
            "lock", True, "no requirements.lock here (not a checkout): versions not compared"
        )
    tested = lock_pins(lock)
    differing = [
        f"{name} {installed} (tested: {tested[name]})"
        for name in KEY_PACKAGES
        if name in tested and (installed := _installed(name)) != tested[name]
    ]
    if differing:
        return Check(
            "lock",
            False,
            f"not the tested versions: {', '.join(differing)}",
            f"pip install -c {lock} -e {lock.parent}",
        )
    return Check("lock", True, f"the key packages are the tested versions of {lock.name}")


def check_cpu(cpuinfo: Path) -> Check:
    """Informational: the features that decide which llama.cpp kernels run."""
    if not cpuinfo.is_file():
        return Check("cpu", True, f"{platform.machine()}, features unknown (no {cpuinfo})")
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in cpuinfo.read_text().splitlines())
    )
    flags = sorted(flag for flag in fields.get("flags", "").split() if _CPU_FLAGS.match(flag))
    model = fields.get("model name", platform.machine())
    return Check("cpu", True, f"{model}: {' '.join(flags) or 'no avx2, avx512f or amx'}")


def check_llama_build() -> Check:
    try:
        import llama_cpp
    except (ImportError, OSError) as error:  # OSError: its shared library did not load
        return Check(
            "llama.cpp", False, f"cannot be loaded: {error}", "pip install -c requirements.lock ."
        )
    info: bytes = llama_cpp.llama_print_system_info()
    # "CPU : SSE3 = 1 | AVX2 = 1 | ... |": the features this build uses.
    used = re.findall(r"(\w+) = 1\b", info.decode(errors="replace"))
    return Check("llama.cpp", True, f"built with {' '.join(used) or 'no CPU extensions'}")


def check_cloud(settings: Settings) -> Check:
    if not cloud_is_configured(settings):
        return Check(
            "cloud",
            True,
            f"none configured: `sllm up` will start the local stand-in "
            f"on :{settings.cloud.standin_port}",
        )
    outcome = asyncio.run(check(settings.cloud, timeout_s=CLOUD_TIMEOUT_S))
    if isinstance(outcome, CheckFailed):
        # The diagnosis ends with what to do.
        return Check("cloud", False, outcome.diagnosis)
    result = outcome.result
    return Check(
        "cloud",
        True,
        f"{settings.cloud.base_url} model {result.model} answered in {result.latency_ms:.0f} ms",
    )


def _listen_error(host: str, port: int) -> str | None:
    """Why a server could not listen there, or None. SO_REUSEADDR as servers set it: a
    port left in TIME_WAIT by a stopped server is free to them."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as error:
        return "is taken" if error.errno == errno.EADDRINUSE else str(error)
    return None


def _setting(name: str) -> str:
    """`router.port (SLLM_ROUTER__PORT)`: the setting, and its environment variable."""
    return f"{name} (SLLM_{name.upper().replace('.', '__')})"


def check_ports(settings: Settings, *, edge_process: bool) -> Check:
    """The ports `sllm up` (with --edge-process, if asked) is about to listen on."""
    router, edge, cloud = settings.router, settings.edge, settings.cloud
    wanted = [(router.host, router.port, "router.port")]
    wanted.append((router.host, router.metrics_port, "router.metrics_port"))
    wanted.append((router.host, router.http_port, "router.http_port"))
    if edge_process:
        wanted.append((edge.host, edge.port, "edge.port"))
        wanted.append((edge.host, edge.metrics_port, "edge.metrics_port"))
    if not cloud_is_configured(settings):
        wanted.append((standin.HOST, cloud.standin_port, "cloud.standin_port"))
    # Port 0: any free port (for metrics: none).
    wanted = [(host, port, setting) for host, port, setting in wanted if port]
    taken = [
        (f"{host}:{port} {error}", setting)
        for host, port, setting in wanted
        if (error := _listen_error(host, port)) is not None
    ]
    if taken:
        return Check(
            "ports",
            False,
            "; ".join(where for where, _ in taken),
            "set " + ", ".join(_setting(setting) for _, setting in taken),
        )
    return Check("ports", True, "free: " + ", ".join(f"{p} ({s})" for _, p, s in wanted))


def check_outcome_log(settings: Settings) -> Check:
    if settings.router.outcome_store is not None:
        return _check_store_url(settings.router.outcome_store)
    db = settings.router.outcome_db
    advice = f"set {_setting('router.outcome_db')} to a writable path"
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return Check("outcomes", False, f"cannot create {db.parent}: {error.strerror}", advice)
    try:
        # A log like the router's (WAL, so -wal and -shm files beside it) in a scratch dir.
        with tempfile.TemporaryDirectory(dir=db.parent, prefix=".sllm-doctor-") as scratch:
            open_store(Path(scratch) / db.name).close()
    except (OSError, StoreError) as error:
        return Check("outcomes", False, f"cannot write in {db.parent}: {error}", advice)
    if db.exists() and not os.access(db, os.W_OK):
        return Check("outcomes", False, f"{db} is not writable", advice)
    return Check("outcomes", True, f"{db} can be written")


def _check_store_url(url: str) -> Check:
    """Opening the store checks the URL, the connection and the schema, and migrates it
    as a router starting would."""
    try:
        store = open_store(url)
    except StoreError as error:
        return Check("outcomes", False, str(error), f"check {_setting('router.outcome_store')}")
    store.close()
    return Check("outcomes", True, f"{store.where} at schema {store.schema_version}")


def _tls_error(tls: TlsSettings, setting: str) -> str | None:
    """Why the certificate, key or client CA cannot be used, or None."""
    if not tls.enabled:
        return None
    try:
        server_context(tls)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        return f"{setting}: {error}"
    return None


def check_access(settings: Settings) -> Check:
    """Tokens and TLS: readable, and not open to a network without tokens."""
    router = settings.router
    try:
        access = Access.from_settings(router)
    except ValueError as error:  # the message names the file, never a token
        return Check("access", False, str(error), "docs/security.md shows the format")
    errors = (_tls_error(router.tls, "router.tls"), _tls_error(settings.edge.tls, "edge.tls"))
    broken = [error for error in errors if error is not None]
    if broken:
        return Check("access", False, "; ".join(broken), "set the certificate and key files")
    tls = "no TLS"
    if router.tls.enabled:
        mutual = router.tls.client_ca_file is not None
        tls = "TLS with client certificates" if mutual else "TLS"
    if access.open:
        detail = f"no API tokens, {tls}: whoever reaches {router.host} may use the router"
        if loopback(router.host):
            return Check("access", True, detail)
        return Check("access", False, detail, "set router.tokens_file (docs/security.md)")
    return Check("access", True, f"tokens for tenants {', '.join(access.tenants)}; {tls}")
