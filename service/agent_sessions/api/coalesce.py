"""Fewer, larger stream messages: deltas that pile up while one is being sent go out as one.

Every streamed message costs tens of microseconds on each side, so when an agent
produces text faster than the transport takes it, the waiting deltas are merged;
an agent that produces slowly still has each delta sent as soon as it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import cast

from agent_sessions.sessions import RunDelta, RunEvent, RunStarted


class _End:
    """Marks the end of the events; carries the error that ended them, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def coalesced(events: AsyncGenerator[RunEvent, None]) -> AsyncGenerator[RunEvent, None]:
    """Yields ``events`` in order, merging consecutive deltas that arrived while waiting.

    The events are produced in a task of their own; closing this generator (as the
    caller's cancellation does) cancels that task, so the run sees the cancellation.
    """
    # A deque and one future to wake the reader: asyncio.Queue costs several times more
    # per event, and a Run passes ~20 deltas through here.
    ready: deque[RunEvent | _End] = deque()
    waiting: list[asyncio.Future[None]] = []

    def put(item: RunEvent | _End) -> None:
        ready.append(item)
        if waiting and not waiting[0].done():
            waiting[0].set_result(None)

    async def produce() -> None:
        try:
            async with aclosing(events):
                async for event in events:
                    put(event)
                    if isinstance(event, RunStarted):
                        # The writer sends it while the agent starts, rather than after
                        # the agent's first burst: the first delta leaves sooner.
                        await asyncio.sleep(0)
        except Exception as error:
            put(_End(error))
        else:
            put(_End())

    producer = asyncio.create_task(produce())
    loop = asyncio.get_running_loop()
    try:
        while True:
            if not ready:
                waiting.append(loop.create_future())
                try:
                    await waiting[0]
                finally:
                    waiting.clear()
            item = ready.popleft()
            if isinstance(item, RunDelta) and ready and isinstance(ready[0], RunDelta):
                texts = [item.text]
                last = item
                while ready and isinstance(ready[0], RunDelta):
                    last = cast(RunDelta, ready.popleft())
                    texts.append(last.text)
                # Numbered as the last merged: a resume after it misses none of them.
                item = RunDelta("".join(texts), sequence=last.sequence)
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
