"""What the edge worker's parts need of a model, as protocols.

`edge_worker.model.EdgeModel` (llama.cpp) is the one real implementation; tests put a
scripted model behind the same protocols (tests/fakes/model.py), so that the generation
loop, the early-exit rules and the worker run exactly, without a model file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sllm.chat import ChatMessage


class TokenModel(Protocol):
    """What one generation needs (`edge_worker.generation.generate`): one sequence at a
    time, under `lock`, read by `prefill`, extended by `feed`."""

    @property
    def lock(self) -> AbstractContextManager[object]: ...

    @property
    def n_vocab(self) -> int: ...

    @property
    def n_ctx(self) -> int: ...

    def prefill(self, tokens: Sequence[int], interrupted: Callable[[], bool] = ...) -> bool:
        """Starts a new sequence with the prompt; False when `interrupted()` stopped it."""
        ...

    def feed(self, token: int) -> None: ...

    def last_logits(self) -> npt.NDArray[np.float32]:
        """The next-token logits after the last prefilled or fed token."""
        ...

    def is_end(self, token: int) -> bool: ...

    def token_bytes(self, token: int) -> bytes: ...


class ServedModel(TokenModel, Protocol):
    """What the worker needs besides: the prompt rendered to tokens, and its identity."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path: ...

    def render_prompt(self, messages: Sequence[ChatMessage], primer: str = "") -> list[int]: ...

    def close(self) -> None: ...
