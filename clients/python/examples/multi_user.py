"""Many users, one session each, resumed when they come back (the seed's SessionManager).

The session id a user was given is what a cookie or local storage would keep: here a
dict stands in for it. Run a server (`make run`), then:
python clients/python/examples/multi_user.py
"""

from __future__ import annotations

import asyncio

from agent_sessions_client import AsyncSession, AsyncSessionClient


class SessionManager:
    """One session per user: resumed by its id if it still lives, else a new one."""

    def __init__(self, client: AsyncSessionClient, agent_id: str) -> None:
        self._client = client
        self._agent_id = agent_id
        self._session_ids: dict[str, str] = {}  # user id -> session id (the "cookie")

    async def session_for(self, user_id: str) -> AsyncSession:
        session = await self._client.load_or_create_session(
            user_id=user_id,
            agent_id=self._agent_id,
            session_id=self._session_ids.get(user_id, ""),
        )
        self._session_ids[user_id] = session.session_id
        return session


async def visit(manager: SessionManager, user_id: str, text: str) -> None:
    session = await manager.session_for(user_id)
    reply = await session.run(text)
    print(f"[{user_id} · {session.session_id[:8]}] {text} -> {reply}")


async def main() -> None:
    async with AsyncSessionClient() as client:
        manager = SessionManager(client, agent_id="echo")
        # Users talk at the same time, each in an independent context...
        await asyncio.gather(
            visit(manager, "alice", "How's the weather in Shanghai?"),
            visit(manager, "bob", "Book a table for two"),
        )
        # ...and when they come back, their session is resumed.
        await asyncio.gather(
            visit(manager, "alice", "What about Beijing?"),
            visit(manager, "bob", "Make it three"),
        )


if __name__ == "__main__":
    asyncio.run(main())
