"""A scripted edge that takes time and keeps to the time it is given, as a real worker does.

`ScriptedEdge` (tests/fakes/edge.py) answers at once whatever the timeout; a router that
left its edge no time after a slow cloud would pass with it. `TimedEdge` needs
`answer_s` of real time for an answer and fails DEADLINE_EXCEEDED when given less.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from router.edge_client import EdgeAnswer, EdgeCall, EdgeError
from sllm.v1 import edge_pb2
from tests.fakes.edge import ScriptedEdge


@dataclass
class TimedEdge:
    answer_s: float = 0.02
    scripted: ScriptedEdge = field(default_factory=ScriptedEdge)
    target: str = "timed-edge"
    continues_trace: bool = False
    # The timeouts the router gave, in order (refused ones too).
    timeouts: list[float] = field(default_factory=list)

    async def generate(
        self, call: EdgeCall, *, timeout_s: float
    ) -> AsyncIterator[str | EdgeAnswer]:
        self.timeouts.append(timeout_s)
        if timeout_s < self.answer_s:
            raise EdgeError(
                f"edge DEADLINE_EXCEEDED: {timeout_s * 1000:.0f} ms given, "
                f"{self.answer_s * 1000:.0f} ms needed",
                code="DEADLINE_EXCEEDED",
            )
        await asyncio.sleep(self.answer_s)
        async for item in self.scripted.generate(call, timeout_s=timeout_s):
            yield item

    async def info(self, *, timeout_s: float = 2.0) -> edge_pb2.EdgeInfo:
        return await self.scripted.info(timeout_s=timeout_s)

    async def healthy(self, *, timeout_s: float = 1.0) -> bool:
        return True

    async def aclose(self) -> None:
        await self.scripted.aclose()
