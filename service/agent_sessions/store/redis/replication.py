"""Writes acknowledged once replicas have them: ``WAIT`` in the same round trip.

Replication is asynchronous: a primary that dies after acknowledging a write and before
a replica has it takes the write with it, and the replica promoted in its place never
saw it. ``WAIT numreplicas timeout`` blocks the connection that wrote until that many
replicas confirm they hold everything it wrote (or the timeout passes), and says how many
did. It must follow the write on the same connection; it may not run inside a script.
So a connection of this module sends it right behind the script, in the same packet,
and reads both replies: a Run still costs two round trips.

Since Redis 7.0 WAIT covers the whole replication stream up to the connection's last
command, write or not (seen here: a read on one connection, after another's write,
waits for that write). So an answer that replays an earlier write without writing
(a retried Run, append or create) waits for that write too.

The store marks such a write by sending :func:`waiting_write` as the command's name
(``EVALSHA``, carrying how many replicas and how long): one connection class serves
the single-server pool, Sentinel's and every cluster node's, and other commands pass
through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions
from redis.asyncio.connection import AbstractConnection

_C = TypeVar("_C", bound=AbstractConnection)


class WaitingWrite(str):
    """``EVALSHA``, to be followed by ``WAIT replicas timeout_ms`` on its connection."""

    replicas: int
    timeout_ms: int


def waiting_write(replicas: int, timeout_ms: int) -> WaitingWrite:
    """The command name of a script whose write must reach ``replicas`` replicas."""
    command = WaitingWrite("EVALSHA")
    command.replicas = replicas
    command.timeout_ms = timeout_ms
    return command


@dataclass(frozen=True, slots=True)
class Replicated:
    """A write's reply, and how many replicas confirmed holding it."""

    reply: Any
    replicas: int


class _PackedWithWait(list[bytes]):
    """A packed write with its WAIT behind it."""


class _WaitAfterWrite:
    """Sends WAIT behind a :class:`WaitingWrite` and answers both as one
    :class:`Replicated` reply."""

    _waits: bool = False

    def pack_command(self, *args: Any) -> list[bytes]:
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        command = args[0]
        if type(command) is WaitingWrite:
            wait: list[bytes] = super().pack_command(  # type: ignore[misc]
                "WAIT", command.replicas, command.timeout_ms
            )
            return _PackedWithWait(packed + wait)
        return packed

    async def send_packed_command(self, command: Any, *args: Any, **kwargs: Any) -> None:
        # Sending may connect first, and connecting reads its own replies (HELLO, CLIENT
        # SETINFO): the WAIT's reply is owed only once the write is on the wire.
        await super().send_packed_command(command, *args, **kwargs)  # type: ignore[misc]
        if type(command) is _PackedWithWait:
            self._waits = True

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        read = super().read_response  # type: ignore[misc]
        if not self._waits:
            return await read(*args, **kwargs)
        self._waits = False
        try:
            reply = await read(*args, **kwargs)
        except redis.exceptions.ResponseError:
            await read()  # WAIT's count: the connection stays in step for its next user
            raise
        return Replicated(reply, int(await read()))

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._waits = False  # a reconnected connection owes no reply
        await super().disconnect(*args, **kwargs)  # type: ignore[misc]


def with_replica_wait(connection_class: type[_C]) -> type[_C]:
    """``connection_class`` sending WAIT behind the writes that ask for it."""
    return type(f"Waiting{connection_class.__name__}", (_WaitAfterWrite, connection_class), {})


def waits_for_replicas(connection_class: type[Any]) -> bool:
    """Whether connections of this class send WAIT behind the writes that ask for it."""
    return issubclass(connection_class, _WaitAfterWrite)
