"""A session-server process per store, for the client and sessionctl tests.

The sync client blocks, so the server runs in a process of its own (as it does for
real users) rather than on the test's event loop.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.redis_server import RedisServer, free_port

SESSION_SERVER = str(Path(sys.executable).parent / "session-server")


def wait_until_serving(address: str) -> None:
    deadline = time.monotonic() + 15
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)


@pytest.fixture(scope="session", params=["memory", "redis"])
def live_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The address of a running session-server on the memory or the Redis store."""
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
