from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import grpc
import pytest

from agent_sessions.config import Settings
from agent_sessions.server import SessionServer
from agent_sessions.store.memory import MemorySessionStore
from agent_sessions.store.protocol import SessionStore
from tests.agents import ScriptedAgent
from tests.grpc_helpers import Stub
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


@pytest.fixture
def scripted_agent() -> ScriptedAgent:
    return ScriptedAgent()


def server_settings(store_url: str, key_prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "address": "127.0.0.1:0",
        "store_url": store_url,
        "key_prefix": key_prefix,
        "health_check_interval": timedelta(milliseconds=100),
        "redis_timeout": timedelta(seconds=1),
        "shutdown_grace": timedelta(seconds=1),
        # Tests name agents freely ("my-agent"); the echo agent answers them all.
        "default_agent": "echo",
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
async def server(
    store_kind: str,
    request: pytest.FixtureRequest,
    key_prefix: str,
    scripted_agent: ScriptedAgent,
) -> AsyncIterator[SessionServer]:
    """A real server on a free loopback port; agent "scripted" is the fake agent."""
    store_url = "memory://"
    if store_kind == "redis":
        store_url = request.getfixturevalue("redis_server").url
    running = SessionServer(
        server_settings(store_url, key_prefix),
        agents={"scripted": scripted_agent},
    )
    await running.start()
    yield running
    await running.stop(0)


@pytest.fixture
async def channel(server: SessionServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Stub:
    return Stub(channel)
