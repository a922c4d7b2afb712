"""A store behind Redis Sentinel: ``redis+sentinel://sentinels/primary-name``. The server
finds the primary through the sentinels, follows a failover without a restart, and says
at startup when the sentinels cannot name the primary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent_sessions.config import check_store_url
from agent_sessions.errors import StoreUnavailable
from agent_sessions.server import SessionServer, StartupError
from agent_sessions.store.redis import RedisSessionStore
from launchers.redis_sentinel import LocalSentinelGroup, TlsFiles
from launchers.redis_server import free_port
from tests.certs import make_certs
from tests.conftest import server_settings
from tests.grpc_helpers import create, reply_of, run, serving, turns
from tests.store_helpers import a_session, now

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def sentinel_group() -> Iterator[LocalSentinelGroup]:
    """A primary, two replicas and three sentinels that no test here fails over."""
    group = LocalSentinelGroup()
    group.start()
    yield group
    group.stop()


async def test_a_server_on_sentinel_stores_sessions_on_the_primary(
    sentinel_group: LocalSentinelGroup, key_prefix: str
) -> None:
    async with serving(server_settings(sentinel_group.url(), key_prefix)) as (_, stub):
        session = await create(stub)
        assert reply_of(await run(stub, session, "hi")) == "Echo (turn 1): hi"

    primary = sentinel_group.client(sentinel_group.primary())
    try:
        assert primary.keys(f"{key_prefix}*")
    finally:
        primary.close()


async def test_a_primary_name_the_sentinels_do_not_monitor_is_a_startup_error(
    sentinel_group: LocalSentinelGroup, key_prefix: str
) -> None:
    server = SessionServer(server_settings(sentinel_group.url("mymaster"), key_prefix))

    with pytest.raises(StartupError) as raised:
        await server.start()
    await server.stop(0)

    assert "monitor no primary named 'mymaster'" in str(raised.value)
    assert "(they monitor: sessions)" in str(raised.value)


async def test_sentinels_that_do_not_answer_are_a_startup_error_naming_them(
    key_prefix: str,
) -> None:
    nobody = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    url = f"redis+sentinel://{','.join(nobody)}/sessions"
    server = SessionServer(server_settings(url, key_prefix))

    with pytest.raises(StartupError) as raised:
        await server.start()
    await server.stop(0)

    assert f"no sentinel answers at {', '.join(nobody)}" in str(raised.value)


async def test_a_server_follows_a_failover_without_a_restart(key_prefix: str) -> None:
    group = LocalSentinelGroup()
    group.start()
    settings = server_settings(
        group.url(), key_prefix, redis_min_replicas=1, redis_timeout=timedelta(seconds=2)
    )
    try:
        async with serving(settings) as (server, stub):
            session = await create(stub)
            await run(stub, session, "before")
            statuses: list[int] = []
            watching = asyncio.create_task(record_health(server.address, statuses))
            old = group.primary()

            group.kill(old)
            killed = time.monotonic()
            while True:
                try:
                    await run(stub, session, "after")
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() is grpc.StatusCode.UNAVAILABLE
                    assert time.monotonic() - killed < 30
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # health checks every 100 ms
            watching.cancel()

            assert group.primary() != old
            history = await turns(stub, session)
            assert history[0].input == "before"
            assert (history[-1].input, history[-1].status) == ("after", pb.TURN_STATUS_COMPLETED)
            assert statuses == [SERVING, NOT_SERVING, SERVING]
    finally:
        group.stop()


async def record_health(address: str, statuses: list[int]) -> None:
    """Appends each health status the server reports that differs from the one before."""
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            if not statuses or statuses[-1] != answer.status:
                statuses.append(answer.status)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://127.0.0.1:26379", "names no primary"),
        ("redis+sentinel://127.0.0.1:26379/", "names no primary"),
        ("redis+sentinel:///sessions", "names no sentinel"),
        ("redis+sentinel://127.0.0.1:26379/sessions/16", "db 16 is out of range"),
        ("redis+sentinel://127.0.0.1:26379/sessions?pasword=x", "unknown query parameter"),
        ("redis+sentinel://127.0.0.1:26379/sessions?ssl_ca_certs=x", "needs TLS"),
    ],
)
def test_a_malformed_sentinel_url_says_what_to_fix(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        check_store_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://a:26379,b:26380/sessions",
        "redis+sentinel://sentinel-host/sessions/3",
        "rediss+sentinel://:secret@a:26379/sessions?sentinel_password=other&ssl_cert_reqs=none",
    ],
)
def test_a_sentinel_url_names_sentinels_a_primary_and_maybe_a_db(url: str) -> None:
    assert check_store_url(url) == url


async def test_rediss_sentinel_speaks_tls_to_the_sentinels_and_the_primary(
    tmp_path: Path, key_prefix: str
) -> None:
    certs = make_certs(tmp_path)
    tls = TlsFiles(certs.server.cert, certs.server.key, certs.server_ca.cert)
    group = LocalSentinelGroup(replicas=1, tls=tls)
    group.start()
    try:
        assert group.url().startswith("rediss+sentinel://")
        async with serving(server_settings(group.url(), key_prefix)) as (_, stub):
            session = await create(stub)
            assert reply_of(await run(stub, session, "hi")) == "Echo (turn 1): hi"
    finally:
        group.stop()


async def test_after_a_failover_the_next_health_check_stops_writes_to_the_old_primary(
    key_prefix: str,
) -> None:
    group = LocalSentinelGroup()
    group.start()
    store = RedisSessionStore.from_url(group.url(), prefix=key_prefix, socket_timeout=2)
    try:
        await store.create(a_session(session_id="before"))  # a connection to the primary
        old = group.primary()
        group.pause(old)  # a stalled host: the sentinels give up on it
        group.wait_for_failover(old)
        group.resume(old)  # still a primary, until the sentinels turn it into a replica

        await health_checked(store)
        await store.create(a_session(session_id="after"))

        for _ in range(200):
            if group.role(old) == "slave":
                break
            await asyncio.sleep(0.05)
        # Written to the primary the sentinels name, not to the old one (whose data the
        # new primary's replaces when it becomes its replica).
        found = await store.get(user_id="user-1", session_id="after", now_ms=now())
        assert found.session_id == "after"
    finally:
        await store.close()
        group.stop()


async def health_checked(store: RedisSessionStore) -> None:
    """Pings as the health checks do, until it answers (some sentinels learn of a
    failover a moment after the others)."""
    for _ in range(100):
        try:
            await store.ping()
            return
        except StoreUnavailable:
            await asyncio.sleep(0.05)
    await store.ping()
