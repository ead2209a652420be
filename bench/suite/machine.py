"""The machine the figures were measured on: they mean little without it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

from sllm.models import bundled_model_path

PACKAGES = (
    "sllm-router",
    "llama_cpp_python",
    "grpcio",
    "onnxruntime",
    "numpy",
    "openai",
    "fastapi",
    "uvicorn",
    "psycopg",
    "matplotlib",
)


def _cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _model_file() -> dict[str, Any]:
    path = bundled_model_path()
    return {"path": str(path), "bytes": path.stat().st_size if path.exists() else None}


def load() -> dict[str, float]:
    """The load averages over 1, 5 and 15 minutes: the machine is shared."""
    one, five, fifteen = os.getloadavg()
    return {"1m": one, "5m": five, "15m": fifteen}


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
        "model": _model_file(),
        "packages": {name: _version(name) for name in PACKAGES},
        "load": load(),
    }
