"""Runs read their history's items from the store only when some agent reads them."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from agent_sessions.agents import AgentContext, AgentEvent, AgentRegistry
from agent_sessions.config import Settings
from agent_sessions.model import TurnStart
from agent_sessions.sessions import SessionManager
from agent_sessions.store.memory import MemorySessionStore

POLICY = Settings.model_validate({}).policy()


class CountingStore(MemorySessionStore):
    """The memory store, noting how many history items each run asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    async def begin_turn(self, **arguments: Any) -> TurnStart:
        self.asked.append(arguments.get("history_items", 0))
        return await super().begin_turn(**arguments)


class ItemReader:
    """An agent that says nothing of what it reads: it may read items."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        self.seen.append(sum(len(turn.items) for turn in context.history))
        yield "ok"


async def two_turns(manager: SessionManager, agent_id: str) -> None:
    session = await manager.create(user_id="u", agent_id=agent_id)
    for text in ("first", "second"):
        async for _ in manager.run(user_id="u", session_id=session.session_id, text=text):
            pass


async def test_when_no_agent_reads_items_runs_do_not_read_them() -> None:
    store = CountingStore()

    await two_turns(SessionManager(store, AgentRegistry(), POLICY), "echo")

    assert store.asked == [0, 0]


async def test_an_agent_that_may_read_items_gets_its_historys() -> None:
    store = CountingStore()
    reader = ItemReader()

    await two_turns(SessionManager(store, AgentRegistry({"reader": reader}), POLICY), "reader")

    assert all(asked > 0 for asked in store.asked)
    assert reader.seen == [0, 2]  # turn 1's message and reply
