"""Redis Cluster for the Redis store: the client of a ``redis+cluster://`` URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agent_sessions.store.redis.connection import store_connection

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""Store URL schemes of a Redis Cluster: ``redis+cluster://host:port[,host:port...]``."""


def cluster_client(url: str, socket_timeout: float, max_connections: int) -> RedisCluster:
    """The cluster client of ``redis+cluster://[user:password@]host:port[,host:port...]``
    (``rediss+cluster://`` for TLS); query options as redis-py takes them. Connections
    pack commands with hiredis and send WAIT behind the writes that ask for it."""
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
    client = RedisCluster(
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
    # RedisCluster takes no connection class; every node it makes reads this one.
    connection_class = store_connection(client.connection_kwargs["connection_class"])
    client.connection_kwargs["connection_class"] = connection_class
    for startup_node in client.startup_nodes:
        startup_node.connection_class = connection_class
    return client
