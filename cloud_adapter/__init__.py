"""The cloud adapter: any OpenAI-compatible endpoint, fast to fail, within the deadline.

It knows endpoints, retries, breakers and cost; nothing about routing policy."""

from typing import TYPE_CHECKING, Any

from cloud_adapter.breaker import BreakerState
from cloud_adapter.errors import (
    CloudAuthError,
    CloudBadRequest,
    CloudDeadlineExceeded,
    CloudError,
    CloudModelNotFound,
    CloudRateLimited,
    CloudStreamBroken,
    CloudUnavailable,
)
from cloud_adapter.result import CloudChunk, CloudResult

if TYPE_CHECKING:
    from cloud_adapter.client import CloudClient

__all__ = [
    "BreakerState",
    "CloudAuthError",
    "CloudBadRequest",
    "CloudChunk",
    "CloudClient",
    "CloudDeadlineExceeded",
    "CloudError",
    "CloudModelNotFound",
    "CloudRateLimited",
    "CloudResult",
    "CloudStreamBroken",
    "CloudUnavailable",
]


def __getattr__(name: str) -> Any:
    # The client pulls in `openai` (over a second to import): only when it is asked for,
    # so that `sllm --help` and the other commands stay quick.
    if name == "CloudClient":
        from cloud_adapter.client import CloudClient

        return CloudClient
    raise AttributeError(f"module 'cloud_adapter' has no attribute {name!r}")
