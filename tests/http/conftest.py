"""The real `openai` client, pointed at a router's HTTP door."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest

# The fault proxy in front of the session's stand-in (a cloud that answers 429 or stalls).
from tests.cloud.conftest import proxy
from tests.fixtures.router import RouterFactory, RunningRouter

__all__ = ["door", "openai_client", "proxy"]

OpenAIFor = Callable[[RunningRouter], openai.AsyncOpenAI]
DoorFactory = Callable[..., Awaitable[tuple[RunningRouter, openai.AsyncOpenAI]]]


@pytest.fixture
async def openai_client() -> AsyncIterator[OpenAIFor]:
    """`openai_client(router)`: an AsyncOpenAI on the router's door, as an app would make
    it (base_url, api_key), but without the SDK's retries, which would hide statuses."""
    clients: list[openai.AsyncOpenAI] = []

    def make(router: RunningRouter) -> openai.AsyncOpenAI:
        clients.append(
            openai.AsyncOpenAI(base_url=f"{router.http_url}/v1", api_key="unused", max_retries=0)
        )
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
def door(real_router: RouterFactory, openai_client: OpenAIFor) -> DoorFactory:
    """`await door(pre=..., cascade=...)`: a real router (real edge, stand-in cloud) with
    its HTTP door, and an `openai` client on it."""

    async def start(**overrides: Any) -> tuple[RunningRouter, openai.AsyncOpenAI]:
        router = await real_router(http=True, **overrides)
        return router, openai_client(router)

    return start
