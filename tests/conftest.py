from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import grpc
import pytest

from agent_sessions.config import Settings
from agent_sessions.server import SessionServer
from agent_sessions.store.memory import MemorySessionStore
from agent_sessions.store.protocol import SessionStore
from launchers.redis_cluster import LocalCluster
from launchers.redis_server import RedisServer
from tests.agents import ScriptedAgent
from tests.grpc_helpers import Stub


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A 3-master Redis Cluster of the tests' own, on free loopback ports."""
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli not found: the Redis Cluster tests need it (`make setup`)")
    cluster = LocalCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def key_prefix() -> str:
    """A prefix of its own per test, so tests share one Redis without seeing each other."""
    return f"test-{uuid.uuid4().hex[:12]}:"


# The fixtures that make a store of the test's store_kind.
_KIND_FIXTURES = ("store_url", "store", "server")


@pytest.fixture(params=["memory", "redis", "cluster"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """memory, the test Redis, or the test Redis Cluster.

    A module that picks its store by ``store_kind == "redis"`` would run the cluster
    kind on memory: the cluster kind runs only where the store comes from the fixtures
    here (not overridden by one of the module's own of the same name), and not in a
    module that sets ``SKIP_CLUSTER = True``.
    """
    kind: str = request.param
    if kind == "cluster" and getattr(request.module, "SKIP_CLUSTER", False):
        pytest.skip("this module runs on memory and Redis only: see its SKIP_CLUSTER")
    if kind == "cluster" and not any(
        name in request.fixturenames and not hasattr(request.module, name)
        for name in _KIND_FIXTURES
    ):
        pytest.skip("this test picks its own store, not the cluster: see conftest.store_kind")
    return kind


@pytest.fixture
def store_url(store_kind: str, request: pytest.FixtureRequest) -> str:
    """The URL of the store of ``store_kind``."""
    if store_kind == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        return redis_server.url
    if store_kind == "cluster":
        redis_cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return redis_cluster.url
    return "memory://"


@pytest.fixture
async def store(store_url: str, key_prefix: str) -> AsyncIterator[SessionStore]:
    made: SessionStore
    if store_url == "memory://":
        made = MemorySessionStore()
    else:
        from agent_sessions.store.redis import RedisSessionStore

        made = RedisSessionStore.from_url(store_url, prefix=key_prefix)
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
    store_url: str, key_prefix: str, scripted_agent: ScriptedAgent
) -> AsyncIterator[SessionServer]:
    """A real server on a free loopback port; agent "scripted" is the fake agent."""
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
