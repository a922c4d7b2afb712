"""A fake agent for the tests: a stand-in for an external agent endpoint.

What it does depends on the input, so one session can show a failure and then
recover: "explode" fails mid-stream, "hang" waits until cancelled, "pause" takes a
moment between two chunks, "wait" sends a chunk and waits for ``release``, "state
{json}" sets those state keys and answers with the state it was given; anything
else counts turns in the session state.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

from agent_sessions.agents import AgentContext, AgentEvent
from agent_sessions.model import StateDelta


class ScriptedAgent:
    def __init__(self, pause_s: float = 0.5) -> None:
        self.pause_s = pause_s
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        if text == "explode":
            yield "partial "
            yield StateDelta(set={"should_not": "be stored"})
            yield "reply"
            raise RuntimeError("the model backend returned 502")
        if text == "odd event":
            yield {"not": "an event"}  # type: ignore[misc]
            return
        if text == "hang":
            yield "thinking"
            self.started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        if text == "pause":
            yield "first half, "
            self.started.set()
            await asyncio.sleep(self.pause_s)
            yield "second half"
            return
        if text == "wait":
            yield "first half, "
            self.started.set()
            await self.release.wait()
            yield "second half"
            return
        if text.startswith("state "):
            # "state {json}": sets those keys, and answers with the state it was given.
            yield StateDelta(set=json.loads(text.removeprefix("state ")))
            yield json.dumps(context.state, sort_keys=True)
            return
        count = int(context.state.get("count", 0)) + 1
        yield StateDelta(set={"count": count, "last_input": text})
        yield f"count={count} "
        yield f"history={len(context.history)}"
