"""Fewer, larger stream messages: deltas that pile up while one is being sent go out as one.

Every streamed message costs tens of microseconds on each side, so when an agent
produces text faster than the transport takes it, the waiting deltas are merged;
an agent that produces slowly still has each delta sent as soon as it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from contextlib import aclosing

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
    queue: asyncio.Queue[RunEvent | _End] = asyncio.Queue()

    async def produce() -> None:
        try:
            async with aclosing(events):
                async for event in events:
                    queue.put_nowait(event)
                    if isinstance(event, RunStarted):
                        # The writer sends it while the agent starts, rather than after
                        # the agent's first burst: the first delta leaves sooner.
                        await asyncio.sleep(0)
        except Exception as error:
            queue.put_nowait(_End(error))
        else:
            queue.put_nowait(_End())

    producer = asyncio.create_task(produce())
    try:
        pending: RunEvent | _End | None = None
        while True:
            item = pending if pending is not None else await queue.get()
            pending = None
            if isinstance(item, RunDelta):
                texts = [item.text]
                last = item
                while not queue.empty():
                    following = queue.get_nowait()
                    if not isinstance(following, RunDelta):
                        pending = following
                        break
                    texts.append(following.text)
                    last = following
                if len(texts) > 1:
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
