"""A fault proxy in front of the session's stand-in server, and clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from cloud_adapter import CloudClient
from tests.cloud.fault_proxy import FaultProxy, proxying
from tests.fakes.clock import FakeClock
from tests.fixtures.cloud import StandInServer, running_standin

MakeClient = Callable[..., CloudClient]


@pytest.fixture
async def proxy(standin_server: StandInServer) -> AsyncIterator[FaultProxy]:
    async with proxying(standin_server.base_url) as proxy:
        yield proxy


@pytest.fixture
async def make_client(
    proxy: FaultProxy, standin_server: StandInServer
) -> AsyncIterator[MakeClient]:
    """Clients through the proxy, with short backoffs (so that tests stay quick) unless
    overridden; each test gets its own breaker, timed on `clock` when one is given."""
    clients: list[CloudClient] = []

    def make(clock: FakeClock | None = None, **overrides: object) -> CloudClient:
        settings = standin_server.settings(
            **(
                {"base_url": proxy.base_url, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}
                | overrides
            )
        )
        clients.append(
            CloudClient(settings) if clock is None else CloudClient(settings, breaker_clock=clock)
        )
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture(scope="module")
def keyed_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandInServer]:
    """A second stand-in that wants the API key "right-key"."""
    with running_standin(tmp_path_factory.mktemp("keyed-standin"), api_key="right-key") as server:
        yield server
