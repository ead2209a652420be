"""Which chat template renders a model's prompts: the order, with plain inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_worker.templates import TemplateChoice, TemplateError, TemplateSource, choose_template

BUILTINS = frozenset({"chatml", "gemma", "llama3", "phi3", "mistral-v7-tekken"})
JINJA = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def choose(
    setting: str | None = None, gguf: str | None = None, architecture: str | None = "llama"
) -> TemplateChoice:
    return choose_template(
        setting=setting, gguf_template=gguf, architecture=architecture, builtins=BUILTINS
    )


def test_the_ggufs_own_template_comes_first() -> None:
    assert choose(gguf=JINJA, architecture="gemma3") == TemplateChoice(
        TemplateSource.GGUF, "tokenizer.chat_template", JINJA
    )


def test_a_builtin_name_from_the_gguf_is_rendered_by_llama_cpp() -> None:
    # llama.cpp answers a built-in name for a few popular files that carry no template.
    assert choose(gguf="mistral-v7-tekken") == TemplateChoice(
        TemplateSource.GGUF, "mistral-v7-tekken"
    )


@pytest.mark.parametrize(
    ("architecture", "name"),
    [("gemma3", "gemma"), ("gemma2", "gemma"), ("qwen2", "chatml"), ("phi3", "phi3")],
)
def test_without_one_the_architectures_builtin_template(architecture: str, name: str) -> None:
    assert choose(architecture=architecture) == TemplateChoice(TemplateSource.ARCHITECTURE, name)


@pytest.mark.parametrize("architecture", ["llama", "mamba", None])
def test_chatml_is_the_last_resort(architecture: str | None) -> None:
    # "llama" is not mapped: Llama 2, Llama 3 and SmolLM2 share it with three formats.
    assert choose(architecture=architecture) == TemplateChoice(TemplateSource.LAST_RESORT, "chatml")


def test_an_architecture_template_this_llama_cpp_lacks_is_not_used() -> None:
    choice = choose_template(
        setting=None, gguf_template=None, architecture="gemma3", builtins={"chatml"}
    )
    assert choice.source is TemplateSource.LAST_RESORT


def test_the_setting_wins_over_everything() -> None:
    assert choose(setting="llama3", gguf=JINJA, architecture="gemma3") == TemplateChoice(
        TemplateSource.SETTING, "llama3"
    )


def test_the_setting_may_name_a_jinja_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.jinja"
    path.write_text(JINJA)
    assert choose(setting=str(path), gguf="{{ other }}") == TemplateChoice(
        TemplateSource.SETTING, str(path), JINJA
    )


def test_a_setting_that_is_neither_a_name_nor_a_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"'lama3' is neither one of llama.cpp's built-in"):
        choose(setting="lama3")
    with pytest.raises(TemplateError, match="chatml, gemma, llama3"):
        choose(setting=str(tmp_path / "missing.jinja"))
