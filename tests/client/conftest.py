"""A session-server process per store, for the client and sessionctl tests.

The sync client blocks, so the server runs in a process of its own (as it does for
real users) rather than on the test's event loop.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from launchers.redis_server import RedisServer, free_port
from tests.processes import wait_until_serving

SESSION_SERVER = str(Path(sys.executable).parent / "session-server")


@pytest.fixture(scope="session", params=["memory", "redis"])
def live_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The address of a running session-server on the memory or the Redis store, with the
    server's defaults (long histories are compressed on their own after a turn)."""
    yield from _session_server(request)


@pytest.fixture(scope="session", params=["memory", "redis"])
def archiving_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """Like ``live_server``, but histories are never compressed on their own, whatever
    their size, and the turns a compression folds are archived (``include_archived``)."""
    yield from _session_server(
        request,
        "--max-history-turns", "0",
        "--max-history-bytes", "0",
        "--archive-folded-turns", "true",
    )  # fmt: skip


def _session_server(request: pytest.FixtureRequest, *options: str) -> Iterator[str]:
    store = "memory://"
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        store = redis.url
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            SESSION_SERVER,
            "--address",
            address,
            "--store",
            store,
            "--key-prefix",
            f"client-{uuid.uuid4().hex[:8]}:",
            "--log-level",
            "WARNING",
            "--default-agent",
            "echo",
            *options,
        ]
    )
    try:
        wait_until_serving(address)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def user_id() -> str:
    """A user of its own per test, so tests on one server never see each other's sessions."""
    return f"user-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def two_replicas(redis_server: RedisServer) -> Iterator[tuple[str, str]]:
    """The addresses of two session-server processes on one Redis, with one key prefix:
    two replicas of one deployment."""
    prefix = f"replicas-{uuid.uuid4().hex[:8]}:"
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    servers = [
        subprocess.Popen(
            [
                *(SESSION_SERVER, "--address", address, "--store", redis_server.url),
                *("--key-prefix", prefix, "--log-level", "WARNING"),
            ]
        )
        for address in addresses
    ]
    try:
        for address in addresses:
            wait_until_serving(address)
        yield addresses[0], addresses[1]
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=15)
