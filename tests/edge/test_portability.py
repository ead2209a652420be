"""edge.extra_buffers: when llama.cpp's CPU extra buffer types are used (plain inputs)."""

from __future__ import annotations

import pydantic
import pytest

from edge_worker.portability import cpu_flags, decide_extra_buffers, extra_buffers_enabled
from sllm.settings import EdgeSettings

AMX = {"fpu", "avx2", "avx512f", "amx_bf16", "amx_tile", "amx_int8"}
EPYC = {"fpu", "avx2", "avx512f", "avx512_bf16"}


@pytest.mark.parametrize("version", ["0.3.30", "0.3.36", "0.4.0", "0.3.17.post1"])
def test_auto_turns_them_off_on_amx_with_a_release_newer_than_0_3_16(version: str) -> None:
    choice = decide_extra_buffers("auto", AMX, version)
    assert not choice.enabled
    assert "AMX (amx_bf16 amx_int8 amx_tile)" in choice.reason
    assert "newer than 0.3.16" in choice.reason


@pytest.mark.parametrize("version", ["0.3.16", "0.3.16+cpu", "0.3.9", "0.2.90"])
def test_auto_keeps_them_on_amx_with_0_3_16_or_older(version: str) -> None:
    choice = decide_extra_buffers("auto", AMX, version)
    assert choice.enabled
    assert f"llama-cpp-python {version} is not known to crash" in choice.reason


@pytest.mark.parametrize("flags", [EPYC, set(), {"amx"}])
def test_auto_keeps_them_on_without_amx(flags: set[str]) -> None:
    choice = decide_extra_buffers("auto", flags, "0.3.36")
    assert choice.enabled
    assert choice.reason == "the CPU has no AMX, where they are known to crash"


def test_one_amx_flag_is_enough() -> None:
    assert not decide_extra_buffers("auto", {"amx_tile"}, "0.3.36").enabled


@pytest.mark.parametrize("flags", [AMX, EPYC])
def test_an_explicit_setting_wins_whatever_the_cpu(flags: set[str]) -> None:
    on = decide_extra_buffers("on", flags, "0.3.36")
    off = decide_extra_buffers("off", flags, "0.3.16")
    assert (on.enabled, on.reason) == (True, "edge.extra_buffers is 'on'")
    assert (off.enabled, off.reason) == (False, "edge.extra_buffers is 'off'")


def test_cpu_flags_come_from_the_flags_line_of_cpuinfo() -> None:
    cpuinfo = (
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu avx512f amx_bf16 amx_tile\nbugs\t\t: spectre_v1\n"
        "processor\t: 1\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n"
    )
    assert cpu_flags(cpuinfo) == {"fpu", "avx512f", "amx_bf16", "amx_tile"}
    assert cpu_flags("processor\t: 0\n") == frozenset()


def test_the_helper_for_other_llama_cpp_users_follows_the_setting() -> None:
    assert extra_buffers_enabled("on") is True
    assert extra_buffers_enabled("off") is False
    # Without AMX, auto keeps them on; with AMX and this llama-cpp-python, off.
    assert isinstance(extra_buffers_enabled("auto"), bool)


def test_the_setting_takes_only_auto_on_or_off() -> None:
    assert EdgeSettings().extra_buffers == "auto"
    assert EdgeSettings(extra_buffers="off").extra_buffers == "off"
    with pytest.raises(pydantic.ValidationError):
        EdgeSettings(extra_buffers="maybe")  # type: ignore[arg-type]
