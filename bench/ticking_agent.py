"""An agent that streams its reply slowly, each delta stamped with the time it was yielded.

`make bench`'s watch section loads it into a session server as a plugin agent::

    --agents '{"ticking": {"kind": "plugin", "object": "bench.ticking_agent:TickingAgent",
               "options": {"count": 50, "interval_ms": 20}}}'

Each delta's text is ``time.time_ns()`` at the moment of the yield followed by
:data:`SEPARATOR`, so a watcher that receives several deltas joined into one event
(the run publishes what it held since its last publication as one delta) still reads
every stamp: :func:`stamps` splits them. The watcher runs on the same machine, so
receive time minus stamp is the delta's latency on one clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

from agent_sessions.agents.protocol import AgentContext, AgentEvent

SEPARATOR = ";"


class TickingAgent:
    """Yields ``count`` stamped deltas, ``interval_ms`` apart (the first at once)."""

    def __init__(self, count: int = 50, interval_ms: float = 20) -> None:
        self._count = count
        self._interval_s = interval_ms / 1000

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        for i in range(self._count):
            if i:
                await asyncio.sleep(self._interval_s)
            yield f"{time.time_ns()}{SEPARATOR}"


def stamps(text: str) -> list[int]:
    """The yield times (ns) of the deltas a text holds, in order."""
    return [int(part) for part in text.split(SEPARATOR) if part]
