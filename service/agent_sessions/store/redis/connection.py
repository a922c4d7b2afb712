"""The connection class of every client the Redis store makes (one server, Sentinel's
primary, each cluster node): commands packed by hiredis (:mod:`.packing`), WAIT sent
behind the writes that ask for it (:mod:`.replication`), a command written without a
task of its own, and a write on a connection that another task closed meanwhile
reported as the connection error it is."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import redis.exceptions
from redis.asyncio.connection import AbstractConnection

from agent_sessions.store.redis.packing import with_hiredis_packing
from agent_sessions.store.redis.replication import with_replica_wait

_C = TypeVar("_C", bound=AbstractConnection)


class _ClosedWriteIsConnectionError:
    """redis-py's cluster client closes every node's connections when the cluster goes
    down mid-failover, also those other calls are about to write on: such a write fails
    with AttributeError (no writer) instead of a ConnectionError (seen in the failover
    tests; redis-py issue 4287 is the same leak from a peer-closed connection)."""

    _writer: Any

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]
        except AttributeError as error:
            if self._writer is not None:
                raise
            raise redis.exceptions.ConnectionError(
                f"the connection was closed while writing: {error}"
            ) from error


class _DirectSend:
    """redis.asyncio bounds every send with ``asyncio.wait_for`` (the socket timeout),
    which makes a task of each one: ~30 µs, and a Run sends two. Writing to a socket
    transport never blocks; only draining waits, once the transport holds more than its
    high-water mark. So a command is written at once while the transport holds nothing
    unsent (it then buffers one command at most); connecting, a transport that still
    holds data and a closing one go through redis-py's send, timeout and all."""

    _writer: asyncio.StreamWriter | None

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        writer = self._writer
        if (
            not isinstance(command, list)
            or writer is None
            or writer.transport.is_closing()
            or writer.transport.get_write_buffer_size()
        ):
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        if check_health:
            await self.check_health()  # type: ignore[attr-defined]
        writer.writelines(command)


def store_connection(connection_class: type[_C]) -> type[_C]:
    """``connection_class`` as the store's clients use it."""
    direct = type(f"Direct{connection_class.__name__}", (_DirectSend, connection_class), {})
    closed_write = type(
        f"Checked{connection_class.__name__}", (_ClosedWriteIsConnectionError, direct), {}
    )
    return with_replica_wait(with_hiredis_packing(closed_write))
