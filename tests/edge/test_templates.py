"""Which chat template renders a model's prompts: the order with plain inputs, then real
models."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_worker.model import EdgeModel, ModelLoadError
from edge_worker.templates import TemplateChoice, TemplateError, TemplateSource, choose_template
from sllm.chat import ChatMessage
from sllm.models import bundled_model_path
from tests.edge.gguf_copies import without_chat_template

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


# On the bundled model (SmolLM2, ChatML in its own template) and a copy without it.

CHAT = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "Name a colour.")]


@pytest.fixture(scope="module")
def no_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return without_chat_template(tmp_path_factory.mktemp("gguf"))


def _open(path: Path, chat_template: str | None = None) -> EdgeModel:
    return EdgeModel(path, n_ctx=256, n_threads=1, chat_template=chat_template)


def _text(model: EdgeModel, tokens: list[int]) -> str:
    return b"".join(model.token_bytes(token) for token in tokens).decode()


def test_the_bundled_model_renders_with_its_own_template() -> None:
    model = _open(bundled_model_path())
    try:
        assert model.template.source is TemplateSource.GGUF
        assert model.template.name == "tokenizer.chat_template"
    finally:
        model.close()


def test_a_model_without_a_template_gets_chatml_rendered_by_llama_cpp(no_template: Path) -> None:
    bare, bundled = _open(no_template), _open(bundled_model_path())
    try:
        assert bare.template == TemplateChoice(TemplateSource.LAST_RESORT, "chatml")
        # SmolLM2's own template is ChatML: both render the same tokens, BOS handling included.
        assert bare.render_prompt(CHAT, "Blue") == bundled.render_prompt(CHAT, "Blue")
    finally:
        bare.close()
        bundled.close()


def test_a_builtin_template_named_in_the_setting_wins_over_the_ggufs() -> None:
    model = _open(bundled_model_path(), "gemma")
    try:
        assert model.template == TemplateChoice(TemplateSource.SETTING, "gemma")
        # Not special tokens in SmolLM2's vocabulary, so they read back as text.
        assert _text(model, model.render_prompt(CHAT)) == (
            "<start_of_turn>user\nAnswer briefly.\n\nName a colour.<end_of_turn>\n"
            "<start_of_turn>model\n"
        )
    finally:
        model.close()


def test_a_jinja_file_named_in_the_setting_renders_the_prompt(
    tmp_path: Path, no_template: Path
) -> None:
    path = tmp_path / "plain.jinja"
    path.write_text(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    )
    model = _open(no_template, str(path))
    try:
        assert model.template.source is TemplateSource.SETTING
        assert _text(model, model.render_prompt(CHAT, " Red")) == (
            "system: Answer briefly.\nuser: Name a colour.\nassistant: Red"
        )
    finally:
        model.close()


def test_a_template_that_is_not_valid_jinja_stops_the_load(tmp_path: Path) -> None:
    path = tmp_path / "broken.jinja"
    path.write_text("{% for m in messages %}")
    with pytest.raises(ModelLoadError, match="the chat template is not valid Jinja"):
        _open(bundled_model_path(), str(path))
