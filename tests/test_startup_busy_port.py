"""A server that cannot listen where it is told says so in one line, and holds nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from agent_sessions.server import SessionServer, StartupError
from tests.conftest import server_settings


@pytest.fixture
def busy_address() -> Iterator[str]:
    """An address another socket listens on, without SO_REUSEPORT."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"


async def test_a_busy_address_is_a_startup_error_naming_it(
    busy_address: str, key_prefix: str
) -> None:
    server = SessionServer(server_settings("memory://", key_prefix, address=busy_address))

    with pytest.raises(StartupError) as refused:
        await server.start()
    await server.stop(0)

    assert str(refused.value) == f"cannot listen on {busy_address}: address already in use"


async def test_a_busy_metrics_address_is_a_startup_error_naming_it(
    busy_address: str, key_prefix: str
) -> None:
    server = SessionServer(server_settings("memory://", key_prefix, metrics_address=busy_address))

    with pytest.raises(StartupError) as refused:
        await server.start()
    await server.stop(0)

    assert str(refused.value) == f"cannot serve metrics on {busy_address}: address already in use"
