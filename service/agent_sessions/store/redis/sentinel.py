"""Redis Sentinel for the Redis store: the client of a ``redis+sentinel://`` URL, which
finds the primary through the sentinels and follows a failover without a restart, and
the startup check that says when the sentinels cannot name it."""

from __future__ import annotations

import asyncio
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import NoBackoff

from agent_sessions.errors import StoreMisconfigured
from agent_sessions.store.redis.connection import store_connection

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
"""Store URL schemes of a primary found by Redis Sentinel:
``redis+sentinel://host:port[,host:port...]/primary-name[/db]``."""
SENTINEL_PORT = 26379
_SENTINEL_CREDENTIALS = {"sentinel_username": "username", "sentinel_password": "password"}


class _NewestPrimary(Sentinel):
    """Sentinels that name the primary of the newest configuration: redis-py believes the
    first sentinel that answers, and during a failover some still name the old primary
    (the one running the failover does until it ends). An old primary that is still up
    (stalled, cut off from the sentinels) would then get writes that its demotion throws
    away. Every sentinel is asked, at once; a primary being failed over is nobody's
    answer, and of the rest the highest configuration epoch wins."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        answers = await asyncio.gather(
            *(sentinel.sentinel_masters() for sentinel in self.sentinels),
            return_exceptions=True,
        )
        newest: tuple[int, str, int] | None = None
        problems: list[str] = []
        for sentinel, answer in zip(self.sentinels, answers, strict=True):
            if isinstance(answer, BaseException):
                problems.append(f"{_address(sentinel)}: {answer!r}")
                continue
            state = cast(dict[str, Any], answer).get(service_name)
            if state is None or not self.check_master_state(state, service_name):
                continue
            if "failover_in_progress" in str(state.get("flags", "")):
                continue
            epoch = int(state.get("config-epoch", 0))
            if newest is None or epoch > newest[0]:
                newest = (epoch, str(state["ip"]), int(state["port"]))
        if newest is None:
            named = f"No master found for {service_name!r}"
            raise MasterNotFoundError(f"{named}: {'; '.join(problems)}" if problems else named)
        return newest[1], newest[2]


class SentinelPrimary(redis.asyncio.Redis):
    """The client of the primary that ``discovery`` names now; closing it closes the
    sentinels' connections too."""

    discovery: Sentinel
    primary_name: str

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        await self.discovery.aclose()

    async def follow_primary(self) -> None:
        """Asks the sentinels where the primary is now; if they name another one, idle
        connections to the old one are closed and busy ones when released (the pool's
        own rule), so that the next calls go to the new primary. Raises
        ``MasterNotFoundError`` when none is named."""
        pool = cast(SentinelConnectionPool, self.connection_pool)
        await pool.get_master_address()  # type: ignore[no-untyped-call]


def sentinel_client(url: str, socket_timeout: float, max_connections: int) -> SentinelPrimary:
    """The client of ``redis+sentinel://[user:password@]host:port[,...]/primary-name[/db]``
    (``rediss+sentinel://`` for TLS to the sentinels and the data nodes alike).

    The URL's credentials are the data nodes'; ``sentinel_username`` and
    ``sentinel_password`` in the query are the sentinels' own. Each new connection asks
    the sentinels where the primary is, and a connection to a primary that was demoted
    is dropped (READONLY), so a failover needs no restart. Connections pack commands
    with hiredis and send WAIT behind the writes that ask for it.
    """
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels: list[tuple[str, int]] = []
    for host_port in (host_port.strip() for host_port in hosts.split(",")):
        node = urlsplit("//" + host_port)
        if not node.hostname:
            # Not the whole URL: it may hold a password.
            raise ValueError(f"sentinel store URL: {host_port!r} is not host:port")
        sentinels.append((node.hostname, node.port or SENTINEL_PORT))
    primary_name, _, db = parts.path.lstrip("/").partition("/")
    query = parse_qsl(parts.query, keep_blank_values=True)
    sentinel_auth = {
        _SENTINEL_CREDENTIALS[name]: value for name, value in query if name in _SENTINEL_CREDENTIALS
    }
    rest = urlencode([(name, value) for name, value in query if name not in _SENTINEL_CREDENTIALS])
    # redis-py parses the rest (credentials, TLS, options) as for one server.
    tls = parts.scheme == "rediss+sentinel"
    netloc = f"{userinfo}@{hosts.split(',')[0]}" if userinfo else hosts.split(",")[0]
    options: dict[str, Any] = dict(
        parse_url(urlunsplit(("rediss" if tls else "redis", netloc, "/" + db, rest, "")))
    )
    options.pop("host", None)
    options.pop("port", None)
    options.pop("connection_class", None)
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    tls_options = {name: value for name, value in options.items() if name.startswith("ssl_")}
    sentinel = _NewestPrimary(  # type: ignore[no-untyped-call]
        sentinels,
        sentinel_kwargs={
            **timeouts,
            **sentinel_auth,
            **({"ssl": True, **tls_options} if tls else {}),
            "decode_responses": True,
            "retry": Retry(NoBackoff(), 0),
        },
    )
    base = SentinelManagedSSLConnection if tls else SentinelManagedConnection
    primary = sentinel.master_for(
        primary_name,
        redis_class=SentinelPrimary,
        connection_pool_class=SentinelConnectionPool,
        connection_class=store_connection(base),
        max_connections=max_connections,
        decode_responses=True,
        encoding_errors="surrogateescape",
        # No retries after errors that leave it unknown whether a script ran (a timeout,
        # a dropped connection, a failover under way): callers retry with request ids.
        retry=Retry(NoBackoff(), 0),
        **timeouts,
        **options,
    )
    assert isinstance(primary, SentinelPrimary)
    primary.discovery = sentinel
    primary.primary_name = primary_name
    return primary


async def check_sentinels(client: SentinelPrimary) -> None:
    """Raises ``StoreMisconfigured`` when no sentinel answers, or when those that answer
    monitor no primary of the URL's name: the store could never serve. A primary that is
    down while they know it is not an error here (health says NOT_SERVING until one is)."""
    sentinel, name = client.discovery, client.primary_name
    addresses = [_address(node) for node in sentinel.sentinels]
    known: set[str] = set()
    answered = False
    problems: list[str] = []
    for node, address in zip(sentinel.sentinels, addresses, strict=True):
        try:
            masters = cast(dict[str, Any], await node.sentinel_masters())
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            problems.append(f"{address}: {error}")
            continue
        except redis.exceptions.ResponseError as error:
            problems.append(f"{address}: {error} (is it a sentinel?)")
            continue
        answered = True
        if name in masters:
            return
        known.update(masters)
    if not answered:
        raise StoreMisconfigured(
            f"no sentinel answers at {', '.join(addresses)}: {'; '.join(problems)}"
        )
    named = ", ".join(sorted(known)) if known else "none"
    raise StoreMisconfigured(
        f"the sentinels at {', '.join(addresses)} monitor no primary named {name!r} "
        f"(they monitor: {named}); write its name after the hosts, as in "
        f"redis+sentinel://host:port/{sorted(known)[0] if known else 'mymaster'}"
    )


def _address(node: redis.asyncio.Redis) -> str:
    settings = node.connection_pool.connection_kwargs
    return f"{settings.get('host')}:{settings.get('port')}"
