"""Whether llama.cpp may use its CPU "extra buffer types" (AMX tiles, weights repacked for
the CPU's vector width) for a model's weights.

They speed up some weight types (a Q4_0 model reads prompts about twice as fast with them
on an AVX-512 CPU), but llama-cpp-python 0.3.30 and 0.3.36 crash at the first multi-token
prompt on Xeons with AMX unless they are off; 0.3.16 does not (docs/edge-engine.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import llama_cpp

from sllm.settings import ExtraBuffersSetting

AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})
# The newest llama-cpp-python release known not to crash on AMX with extra buffers on.
LAST_SAFE_ON_AMX = (0, 3, 16)
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True, slots=True)
class ExtraBuffersChoice:
    enabled: bool
    reason: str


def decide_extra_buffers(
    setting: ExtraBuffersSetting, cpu_flags: Collection[str], llama_cpp_version: str
) -> ExtraBuffersChoice:
    if setting != "auto":
        return ExtraBuffersChoice(setting == "on", f"edge.extra_buffers is {setting!r}")
    amx = sorted(AMX_FLAGS.intersection(cpu_flags))
    if not amx:
        return ExtraBuffersChoice(True, "the CPU has no AMX, where they are known to crash")
    if _release(llama_cpp_version) <= LAST_SAFE_ON_AMX:
        return ExtraBuffersChoice(
            True,
            f"the CPU has AMX ({' '.join(amx)}) but llama-cpp-python "
            f"{llama_cpp_version} is not known to crash with them there",
        )
    return ExtraBuffersChoice(
        False,
        f"the CPU has AMX ({' '.join(amx)}), where llama-cpp-python newer than "
        f"{'.'.join(map(str, LAST_SAFE_ON_AMX))} crashes with them at the first "
        "multi-token prompt",
    )


def _release(version: str) -> tuple[int, ...]:
    """(0, 3, 16) for "0.3.16", "0.3.16.post1" or "0.3.16+cu121"."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of /proc/cpuinfo's first processor (all of them share one set)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def this_machine_choice(setting: ExtraBuffersSetting) -> ExtraBuffersChoice:
    """The choice for this CPU and the installed llama-cpp-python."""
    info = CPUINFO.read_text() if CPUINFO.is_file() else ""
    return decide_extra_buffers(setting, cpu_flags(info), metadata.version("llama-cpp-python"))


def extra_buffers_enabled(setting: ExtraBuffersSetting) -> bool:
    """For other llama.cpp users in sllm (the cloud stand-in): the same policy as the edge."""
    return this_machine_choice(setting).enabled


@contextmanager
def llama_class_extra_buffers(enabled: bool) -> Iterator[None]:
    """While inside, every `llama_cpp.Llama` built uses extra buffer types only if
    `enabled`; for the llama.cpp users sllm does not build itself (the stand-in server, the
    edge benchmark's bare loop). The edge worker sets its models' parameters directly
    (edge_worker/native.py).

    `Llama()` takes no such parameter: it starts from the public
    `llama_cpp.llama_cpp.llama_model_default_params()`, looked up under that module at
    each call, so the defaults are replaced there for the duration."""
    module = llama_cpp.llama_cpp
    defaults = module.llama_model_default_params

    def with_choice() -> llama_cpp.llama_model_params:
        params: llama_cpp.llama_model_params = defaults()
        params.use_extra_bufts = enabled
        return params

    module.llama_model_default_params = with_choice
    try:
        yield
    finally:
        module.llama_model_default_params = defaults
