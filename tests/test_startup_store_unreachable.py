"""A server whose Redis cannot be reached says why, not only that it is NOT_SERVING."""

from __future__ import annotations

import logging

import pytest

from agent_sessions.server import SessionServer
from launchers.redis_server import free_port
from tests.conftest import server_settings


async def test_a_server_whose_redis_refuses_connections_logs_why_and_where(
    caplog: pytest.LogCaptureFixture, key_prefix: str
) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    server = SessionServer(server_settings(f"redis://{address}/0", key_prefix))

    with caplog.at_level(logging.WARNING, logger="agent_sessions.health"):
        await server.start()
        await server.stop(0)

    [warning] = [record.getMessage() for record in caplog.records]
    assert warning.startswith("store does not answer (NOT_SERVING): ")
    assert address in warning
    assert "Connection refused" in warning
