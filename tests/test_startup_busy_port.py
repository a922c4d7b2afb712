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


@pytest.mark.parametrize(
    ("setting", "refused"),
    [("address", "cannot listen on"), ("metrics_address", "cannot serve metrics on")],
)
async def test_a_busy_address_is_a_startup_error_naming_it(
    busy_address: str, key_prefix: str, setting: str, refused: str
) -> None:
    server = SessionServer(server_settings("memory://", key_prefix, **{setting: busy_address}))

    with pytest.raises(StartupError) as raised:
        await server.start()
    await server.stop(0)

    assert str(raised.value) == f"{refused} {busy_address}: address already in use"
