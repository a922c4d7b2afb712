"""--redis-min-replicas: a write is acknowledged once replicas hold it, or fails UNAVAILABLE
and a retry with the same request id completes it without doing it twice.

A replica that stops answering (SIGSTOP, as a stalled host) confirms nothing; the
primary keeps every write, so the retries find them.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncGenerator, Iterator
from datetime import timedelta

import grpc
import pytest
import redis.asyncio
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import field_mask_pb2
from pydantic import ValidationError

from agent_sessions.agents import AgentContext, AgentEvent
from agent_sessions.config import Settings
from agent_sessions.store.redis.connection import store_connection
from agent_sessions.store.redis.keys import KeySpace
from agent_sessions.store.redis.replication import Replicated, waiting_write
from launchers.redis_cluster import LocalCluster
from launchers.redis_sentinel import LocalSentinelGroup
from launchers.redis_server import free_port
from tests.conftest import server_settings
from tests.grpc_helpers import (
    Stub,
    create,
    error_info,
    reply_of,
    rpc_error,
    run,
    serving,
    turns,
)

REPLICA_TIMEOUT = timedelta(milliseconds=200)


class CountingEcho:
    """Echoes, counting how often it was asked each input."""

    reads_items = False

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        self.calls[text] += 1
        yield f"echo: {text}"


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[LocalSentinelGroup]:
    """A primary with one replica, no sentinels: nothing fails over here."""
    group = LocalSentinelGroup(replicas=1, sentinels=0)
    group.start()
    yield group
    group.stop()


@pytest.fixture(scope="module")
def cluster_with_replicas() -> Iterator[LocalCluster]:
    cluster = LocalCluster(replicas=1, node_timeout_ms=60_000)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def agent() -> CountingEcho:
    return CountingEcho()


@pytest.fixture
def replica(primary_and_replica: LocalSentinelGroup) -> Iterator[int]:
    """The replica's port; resumed after the test if the test paused it."""
    port = primary_and_replica.redis_ports[1]
    yield port
    primary_and_replica.resume(port)
    primary_and_replica.wait_for_replicas()


def settings_for(url: str, key_prefix: str, replicas: int = 1, **overrides: object) -> Settings:
    return server_settings(
        url,
        key_prefix,
        redis_min_replicas=replicas,
        redis_replica_timeout=REPLICA_TIMEOUT,
        **overrides,
    )


def primary_url(group: LocalSentinelGroup) -> str:
    return f"redis://127.0.0.1:{group.redis_ports[0]}/0"


async def test_every_write_succeeds_while_the_replica_confirms_it(
    primary_and_replica: LocalSentinelGroup, replica: int, key_prefix: str, agent: CountingEcho
) -> None:
    settings = settings_for(primary_url(primary_and_replica), key_prefix)
    async with serving(settings, {"counting": agent}) as (_, stub):
        session = await create(stub, agent_id="counting", session_id="s-1", request_id="create-1")
        assert reply_of(await run(stub, session, "hi", request_id="run-1")) == "echo: hi"
        await append(stub, session, "appended", request_id="append-1")
        change = pb.Session(
            session_id=session.session_id, user_id=session.user_id, labels={"kind": "test"}
        )
        await stub.UpdateSession(
            pb.UpdateSessionRequest(
                session=change, update_mask=field_mask_pb2.FieldMask(paths=["labels"])
            )
        )
        await stub.EndSession(
            pb.EndSessionRequest(session_id=session.session_id, user_id=session.user_id)
        )
        await stub.DeleteSession(
            pb.DeleteSessionRequest(session_id=session.session_id, user_id=session.user_id)
        )


async def test_a_run_no_replica_confirms_fails_unavailable_and_its_retry_replays_it_once(
    primary_and_replica: LocalSentinelGroup, replica: int, key_prefix: str, agent: CountingEcho
) -> None:
    metrics_address = f"127.0.0.1:{free_port()}"
    settings = settings_for(
        primary_url(primary_and_replica), key_prefix, metrics_address=metrics_address
    )
    async with serving(settings, {"counting": agent}) as (server, stub):
        session = await create(stub, agent_id="counting")
        primary_and_replica.pause(replica)

        error = await rpc_error(run(stub, session, "hi", request_id="run-1"))

        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert error_info(error).reason == "NOT_REPLICATED"
        assert "0 of the 1 replicas" in (error.details() or "")
        assert "same request id" in (error.details() or "")
        assert server.metrics is not None
        counted = server.metrics.registry.get_sample_value(
            "sessions_store_errors_total", {"operation": "finish_turn", "error": "NotReplicated"}
        )
        assert counted == 1
        primary_and_replica.resume(replica)
        retried = await run(stub, session, "hi", request_id="run-1")
        assert retried[0].started.replayed
        assert reply_of(retried) == "echo: hi"
        assert agent.calls["hi"] == 1
        [turn] = await turns(stub, session)
        assert turn.status == pb.TURN_STATUS_COMPLETED


async def test_a_replayed_turn_also_waits_for_the_replica(
    primary_and_replica: LocalSentinelGroup, replica: int, key_prefix: str, agent: CountingEcho
) -> None:
    settings = settings_for(primary_url(primary_and_replica), key_prefix)
    async with (
        serving(settings, {"counting": agent}) as (_, stub),
        serving(settings, {"counting": agent}) as (_, other),
    ):
        # The other server's connection writes first, and its replica confirms that.
        session = await create(other, agent_id="counting")
        primary_and_replica.pause(replica)
        await rpc_error(run(stub, session, "hi", request_id="run-1"))

        # The primary has the turn; a replay acknowledges it, so it waits as the commit
        # did, also on a server whose connection wrote before it, not it.
        error = await rpc_error(run(other, session, "hi", request_id="run-1"))

        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert agent.calls["hi"] == 1


async def test_a_create_no_replica_confirms_fails_unavailable_and_its_retry_returns_it(
    primary_and_replica: LocalSentinelGroup, replica: int, key_prefix: str, agent: CountingEcho
) -> None:
    settings = settings_for(primary_url(primary_and_replica), key_prefix)
    async with serving(settings, {"counting": agent}) as (_, stub):
        primary_and_replica.pause(replica)
        error = await rpc_error(create(stub, session_id="s-1", request_id="create-1"))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        primary_and_replica.resume(replica)

        session = await create(stub, agent_id="counting", session_id="s-1", request_id="create-1")

        assert session.session_id == "s-1"
        listed = await stub.ListSessions(pb.ListSessionsRequest(user_id="user-1"))
        assert [s.session_id for s in listed.sessions] == ["s-1"]


async def test_an_append_no_replica_confirms_fails_unavailable_and_its_retry_stores_it_once(
    primary_and_replica: LocalSentinelGroup, replica: int, key_prefix: str, agent: CountingEcho
) -> None:
    settings = settings_for(primary_url(primary_and_replica), key_prefix)
    async with serving(settings, {"counting": agent}) as (_, stub):
        session = await create(stub, agent_id="elsewhere", external_agent=True)
        primary_and_replica.pause(replica)
        error = await rpc_error(append(stub, session, "once", request_id="append-1"))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        primary_and_replica.resume(replica)

        response = await append(stub, session, "once", request_id="append-1")

        assert [item.sequence for item in response.items] == [1]
        listed = await stub.ListItems(
            pb.ListItemsRequest(session_id=session.session_id, user_id=session.user_id)
        )
        assert len(listed.items) == 1


async def test_without_the_option_a_write_does_not_wait_for_a_stalled_replica(
    primary_and_replica: LocalSentinelGroup, replica: int, key_prefix: str, agent: CountingEcho
) -> None:
    settings = settings_for(primary_url(primary_and_replica), key_prefix, replicas=0)
    async with serving(settings, {"counting": agent}) as (_, stub):
        session = await create(stub, agent_id="counting")
        primary_and_replica.pause(replica)

        assert reply_of(await run(stub, session, "hi")) == "echo: hi"


async def test_on_a_cluster_a_write_waits_for_its_masters_replica(
    cluster_with_replicas: LocalCluster, key_prefix: str, agent: CountingEcho
) -> None:
    settings = settings_for(cluster_with_replicas.url, key_prefix)
    owner = cluster_with_replicas.owner(KeySpace(key_prefix).user("user-1").index)
    [replica] = cluster_with_replicas.replicas_of(owner)
    async with serving(settings, {"counting": agent}) as (_, stub):
        session = await create(stub, agent_id="counting")
        cluster_with_replicas.pause(replica)
        try:
            error = await rpc_error(run(stub, session, "hi", request_id="run-1"))
        finally:
            cluster_with_replicas.resume(replica)

        assert error.code() is grpc.StatusCode.UNAVAILABLE
        retried = await run(stub, session, "hi", request_id="run-1")
        assert retried[0].started.replayed
        assert agent.calls["hi"] == 1


async def test_a_waiting_write_that_opens_its_connection_reads_the_handshake_apart(
    primary_and_replica: LocalSentinelGroup,
) -> None:
    # The cluster's nodes hand out connections not yet connected: the write's send
    # connects first, and the handshake's replies are not the write's.
    port = primary_and_replica.redis_ports[0]
    connection = store_connection(redis.asyncio.Connection)(host="127.0.0.1", port=port)
    sha = await connection_script_load(port, "return 7")
    try:
        await connection.send_command(waiting_write(1, 1000), sha, 0)
        reply = await asyncio.wait_for(connection.read_response(), timeout=5)
    finally:
        await connection.disconnect()

    assert reply == Replicated(7, 1)


async def connection_script_load(port: int, script: str) -> str:
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    try:
        return str(await client.script_load(script))
    finally:
        await client.aclose()


def test_min_replicas_on_the_memory_store_is_a_settings_error(key_prefix: str) -> None:
    with pytest.raises(ValidationError, match="memory:// has no replicas"):
        server_settings("memory://", key_prefix, redis_min_replicas=1)


def test_a_replica_timeout_past_the_redis_timeout_is_a_settings_error(key_prefix: str) -> None:
    with pytest.raises(ValidationError, match="must be under --redis-timeout"):
        server_settings(
            "redis://127.0.0.1:6379/0",
            key_prefix,
            redis_min_replicas=1,
            redis_replica_timeout=timedelta(seconds=2),
            redis_timeout=timedelta(seconds=1),
        )


async def append(
    stub: Stub, session: pb.Session, text: str, *, request_id: str
) -> pb.AppendItemsResponse:
    payload = json.dumps({"role": "user", "content": text})
    response: pb.AppendItemsResponse = await stub.AppendItems(
        pb.AppendItemsRequest(
            session_id=session.session_id,
            user_id=session.user_id,
            items=[pb.Item(type=pb.ITEM_TYPE_MESSAGE, role="user", payload_json=payload)],
            request_id=request_id,
        )
    )
    return response
