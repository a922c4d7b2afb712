from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from agent_sessions.store.memory import MemorySessionStore
from agent_sessions.store.protocol import SessionStore
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key_prefix() -> str:
    """A prefix of its own per test, so tests share one Redis without seeing each other."""
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def store(
    store_kind: str, request: pytest.FixtureRequest, key_prefix: str
) -> AsyncIterator[SessionStore]:
    made: SessionStore
    if store_kind == "memory":
        made = MemorySessionStore()
    else:
        from agent_sessions.store.redis import RedisSessionStore

        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisSessionStore.from_url(server.url, prefix=key_prefix)
    yield made
    await made.close()
