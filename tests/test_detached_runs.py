"""A detached run counts as one run against the process's limit, whoever follows it
(before, its answer and its caller's following counted as two)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator

from agent_sessions.agents import AgentContext, AgentEvent, AgentRegistry
from agent_sessions.config import Settings
from agent_sessions.sessions import RunEvent, SessionManager
from agent_sessions.store.memory import MemorySessionStore

POLICY = dataclasses.replace(Settings.model_validate({}).policy(), max_concurrent_runs=2)


class WaitingAgent:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        yield "first "
        self.started.set()
        await self.release.wait()
        yield "last"


async def drain(events: AsyncGenerator[RunEvent, None]) -> list[RunEvent]:
    return [event async for event in events]


async def test_a_followed_detached_run_leaves_room_for_as_many_other_runs() -> None:
    agent = WaitingAgent()
    manager = SessionManager(MemorySessionStore(), AgentRegistry({"waiting": agent}), POLICY)
    first = await manager.create(user_id="u", agent_id="waiting")
    second = await manager.create(user_id="u", agent_id="echo")

    followed = asyncio.create_task(
        drain(manager.run(user_id="u", session_id=first.session_id, text="hi", detach=True))
    )
    await asyncio.wait_for(agent.started.wait(), 5)
    other = await drain(manager.run(user_id="u", session_id=second.session_id, text="hi"))
    agent.release.set()
    await asyncio.wait_for(followed, 5)

    assert other  # run while the detached one ran and its caller followed it
