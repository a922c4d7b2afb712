"""Fake agents for the tests: stand-ins for external agent endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agent_sessions.agents import AgentContext
from agent_sessions.model import StateDelta


class FailingAgent:
    """Streams two chunks, then raises."""

    async def stream(self, context: AgentContext, text: str) -> AsyncIterator[str | StateDelta]:
        yield "partial "
        yield StateDelta(set={"should_not": "be stored"})
        yield "reply"
        raise RuntimeError("the model backend returned 502")


class SlowAgent:
    """Streams one chunk, then waits until cancelled; records that it was."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def stream(self, context: AgentContext, text: str) -> AsyncIterator[str | StateDelta]:
        yield "thinking"
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        yield "never"


class PausingAgent:
    """Streams a chunk, pauses for a while, then finishes: a turn that is in flight."""

    def __init__(self, pause_s: float) -> None:
        self.pause_s = pause_s
        self.started = asyncio.Event()

    async def stream(self, context: AgentContext, text: str) -> AsyncIterator[str | StateDelta]:
        yield "first half, "
        self.started.set()
        await asyncio.sleep(self.pause_s)
        yield "second half"


class CountingAgent:
    """Keeps a count in the session state and reports what it was given."""

    async def stream(self, context: AgentContext, text: str) -> AsyncIterator[str | StateDelta]:
        count = int(context.state.get("count", 0)) + 1
        yield StateDelta(set={"count": count, "last_input": text})
        yield f"count={count} history={len(context.history)}"
