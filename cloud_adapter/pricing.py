"""Cost accounting from per-model prices per million tokens."""

from __future__ import annotations

from sllm.settings import CloudSettings, ModelPrice


def price_for(settings: CloudSettings, model: str) -> ModelPrice:
    """The exact model's price, else that of the longest listed prefix, else the defaults."""
    if model in settings.prices:
        return settings.prices[model]
    prefixes = [name for name in settings.prices if model.startswith(name)]
    if prefixes:
        return settings.prices[max(prefixes, key=len)]
    return ModelPrice(
        input_per_mtok=settings.price_input_per_mtok,
        output_per_mtok=settings.price_output_per_mtok,
    )


def cost_usd(price: ModelPrice, prompt_tokens: int, completion_tokens: int) -> float:
    return (
        prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
    ) / 1_000_000
