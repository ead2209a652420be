"""Which chat template renders the prompts of a model, and rendering with it.

The order: `edge.chat_template` when set (the user knows best); the GGUF file's own
template; llama.cpp's built-in template for the model's architecture, where the
architecture alone tells the chat format; ChatML last (logged as a warning at start-up: a
model trained on another format answers worse).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import jinja2
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from edge_worker.native import apply_builtin_template
from sllm.chat import ChatMessage

# Architectures (GGUF `general.architecture`) whose models all use one chat format.
# Not "llama": Llama 2, Llama 3 and SmolLM2 share it with three formats.
ARCHITECTURE_TEMPLATES = {
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "qwen2": "chatml",
    "qwen2moe": "chatml",
    "qwen3": "chatml",
    "qwen3moe": "chatml",
    "phi3": "phi3",
    "command-r": "command-r",
    "chatglm": "chatglm4",
    "exaone": "exaone3",
    "granite": "granite",
}
LAST_RESORT = "chatml"


class TemplateSource(StrEnum):
    SETTING = "setting"
    GGUF = "gguf"
    ARCHITECTURE = "architecture"
    LAST_RESORT = "last resort"


class TemplateError(ValueError):
    """`edge.chat_template` names neither a built-in template nor a readable file, or a
    Jinja template does not compile."""


@dataclass(frozen=True, slots=True)
class TemplateChoice:
    source: TemplateSource
    # A built-in template's name; for Jinja, where it comes from (GGUF key or file path).
    name: str
    # The Jinja text; None for llama.cpp's built-in template `name`.
    jinja: str | None = None


def choose_template(
    *,
    setting: str | None,
    gguf_template: str | None,
    architecture: str | None,
    builtins: Collection[str],
) -> TemplateChoice:
    if setting:
        if setting in builtins:
            return TemplateChoice(TemplateSource.SETTING, setting)
        try:
            return TemplateChoice(TemplateSource.SETTING, setting, Path(setting).read_text())
        except OSError as error:
            raise TemplateError(
                f"edge.chat_template {setting!r} is neither one of llama.cpp's built-in "
                f"templates ({', '.join(sorted(builtins))}) nor a readable Jinja file: {error}"
            ) from error
    if gguf_template:
        # A few popular files carry none, and llama.cpp answers a built-in name for them.
        if gguf_template in builtins:
            return TemplateChoice(TemplateSource.GGUF, gguf_template)
        return TemplateChoice(TemplateSource.GGUF, "tokenizer.chat_template", gguf_template)
    by_architecture = ARCHITECTURE_TEMPLATES.get(architecture or "")
    if by_architecture is not None and by_architecture in builtins:
        return TemplateChoice(TemplateSource.ARCHITECTURE, by_architecture)
    return TemplateChoice(TemplateSource.LAST_RESORT, LAST_RESORT)


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    text: str
    # Whether tokenizing adds the model's BOS token (the template did not write it).
    add_special: bool


class PromptRenderer(Protocol):
    def __call__(self, messages: Sequence[ChatMessage]) -> RenderedPrompt: ...


class JinjaRenderer:
    def __init__(self, template: str, *, bos_token: str, eos_token: str) -> None:
        try:
            self._formatter = Jinja2ChatFormatter(
                template=template, bos_token=bos_token, eos_token=eos_token
            )
        except jinja2.TemplateError as error:
            raise TemplateError(f"the chat template is not valid Jinja: {error}") from error

    def __call__(self, messages: Sequence[ChatMessage]) -> RenderedPrompt:
        rendered = self._formatter(messages=[m.as_openai() for m in messages])  # type: ignore[misc]
        return RenderedPrompt(rendered.prompt, add_special=not rendered.added_special)


class BuiltinRenderer:
    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, messages: Sequence[ChatMessage]) -> RenderedPrompt:
        text = apply_builtin_template(self._name, [(m.role, m.content) for m in messages])
        # llama.cpp's built-in templates leave BOS to the tokenizer.
        return RenderedPrompt(text, add_special=True)
