"""The gate a store call passes first: the store's clients' pools fail a call at once
when their connections are all busy (the single server's, a cluster's, Sentinel's);
behind the gate, calls wait for one instead."""

from __future__ import annotations

import asyncio
from types import TracebackType

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import RedisCluster


class ConnectionGate:
    """At most ``size`` calls in flight; one more waits up to ``timeout_s`` for a place.

    A pool fails a call at once (MaxConnectionsError) when its connections are all
    busy, a cluster client when its node's are: with no more calls in flight than
    connections (per node), calls wait for a place instead, up to the timeout.
    """

    def __init__(self, size: int, timeout_s: float | None) -> None:
        self._places = asyncio.Semaphore(size)
        self._timeout_s = timeout_s

    async def __aenter__(self) -> None:
        if not self._places.locked():
            await self._places.acquire()  # returns at once
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._places.acquire()
        except TimeoutError:
            raise redis.exceptions.ConnectionError("No connection available.") from None

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._places.release()


def gate_of(client: redis.asyncio.Redis | RedisCluster) -> ConnectionGate:
    """The gate of a store's client, as wide as its pool (per node, on a cluster)."""
    if isinstance(client, RedisCluster):
        settings = client.connection_kwargs
        return ConnectionGate(settings["max_connections"], settings.get("socket_timeout"))
    pool = client.connection_pool
    return ConnectionGate(pool.max_connections, pool.connection_kwargs.get("socket_timeout"))
