"""Redis Cluster for the Redis store: the client of a ``redis+cluster://`` URL, and the
gate that makes its calls wait for a connection as the single-server pool does."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""Store URL schemes of a Redis Cluster: ``redis+cluster://host:port[,host:port...]``."""


def cluster_client(url: str, socket_timeout: float, max_connections: int) -> RedisCluster:
    """The cluster client of ``redis+cluster://[user:password@]host:port[,host:port...]``
    (``rediss+cluster://`` for TLS); query options as redis-py takes them."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    host_ports = [host_port.strip() for host_port in hosts.split(",")]
    nodes = []
    for host_port in host_ports:
        node = urlsplit("//" + host_port)
        if not node.hostname:
            # Not the whole URL: it may hold a password.
            raise ValueError(f"cluster store URL: {host_port!r} is not host:port")
        nodes.append(ClusterNode(node.hostname, node.port or 6379))
    # redis-py parses the rest (credentials, TLS, options) as for one server.
    single = "rediss" if parts.scheme == "rediss+cluster" else "redis"
    netloc = f"{userinfo}@{host_ports[0]}" if userinfo else host_ports[0]
    options: dict[str, Any] = dict(
        parse_url(urlunsplit((single, netloc, parts.path, parts.query, "")))
    )
    options.pop("host", None)
    options.pop("port", None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    settings: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "max_connections": max_connections,  # per node
        **options,
    }
    return RedisCluster(
        startup_nodes=nodes,
        decode_responses=True,
        encoding_errors="surrogateescape",
        # No retries after errors that leave it unknown whether a script ran (a timeout,
        # a dropped connection), nor after CLUSTERDOWN: callers retry with request ids.
        # The next call after such an error rereads the topology; MOVED, ASK and TRYAGAIN
        # are followed regardless, since a redirected script has not run.
        retry=Retry(NoBackoff(), 0),
        **settings,
    )


class ConnectionGate:
    """At most ``size`` calls in flight; one more waits up to ``timeout_s`` for a place.

    A cluster client fails a call at once (MaxConnectionsError) when its node's
    connections are all busy, where the single-server client's blocking pool waits for
    one: with no more calls in flight than connections per node, cluster calls wait too.
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


def gate_of(
    client: redis.asyncio.Redis | RedisCluster,
) -> ConnectionGate | contextlib.nullcontext[None]:
    """What a store call passes through first: a cluster client's gate, or nothing (the
    single-server client's pool waits for a free connection itself)."""
    if not isinstance(client, RedisCluster):
        return contextlib.nullcontext()
    settings = client.connection_kwargs
    return ConnectionGate(settings["max_connections"], settings.get("socket_timeout"))
