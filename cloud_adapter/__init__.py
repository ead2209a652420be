"""The cloud adapter: any OpenAI-compatible endpoint, fast to fail, within the deadline.

It knows endpoints, retries, breakers and cost; nothing about routing policy."""

from cloud_adapter.breaker import BreakerState
from cloud_adapter.client import CloudClient
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
