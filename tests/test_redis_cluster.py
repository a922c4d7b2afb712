"""The Redis store on a Redis Cluster: its URL, sessions spread over the masters, slots
that move, masters that die.

The store contract and the gRPC suites also run on the cluster (store_kind "cluster",
see tests/conftest.py); these are what only a cluster has.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import field_mask_pb2
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

from agent_sessions.config import Settings
from agent_sessions.errors import SessionNotFound, StoreUnavailable, TooManySessions
from agent_sessions.model import SessionPatch
from agent_sessions.store.redis import RedisSessionStore
from agent_sessions.store.redis.cluster import cluster_client
from agent_sessions.store.redis.keys import KeySpace
from launchers.redis_cluster import LocalCluster
from launchers.redis_server import free_port
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, rpc_error, run, serving, state_of, turns
from tests.store_helpers import a_session, now, run_turn


@pytest.fixture
async def cluster_store(
    redis_cluster: LocalCluster, key_prefix: str
) -> AsyncIterator[RedisSessionStore]:
    store = RedisSessionStore.from_url(redis_cluster.url, prefix=key_prefix)
    yield store
    await store.close()


@pytest.fixture
async def cluster_stub(redis_cluster: LocalCluster, key_prefix: str) -> AsyncIterator[Stub]:
    async with serving(server_settings(redis_cluster.url, key_prefix)) as (_, stub):
        yield stub


# --- the URL ------------------------------------------------------------------------


def test_a_cluster_url_names_the_startup_nodes_and_the_client_options() -> None:
    client = cluster_client(
        "redis+cluster://:s3cret@10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002,cache",
        socket_timeout=2.5,
        max_connections=8,
    )

    assert [node.name for node in client.startup_nodes] == [
        "10.0.0.1:7000",
        "10.0.0.2:7001",
        "::1:7002",
        "cache:6379",
    ]
    options = client.connection_kwargs
    assert options["password"] == "s3cret"
    assert (options["decode_responses"], options["encoding_errors"]) == (True, "surrogateescape")
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (2.5, 2.5)
    assert options["max_connections"] == 8
    # No blind retries (a script may have run); redirections do not go through it.
    assert client.retry.get_retries() == 0


def test_rediss_cluster_speaks_tls() -> None:
    client = cluster_client("rediss+cluster://10.0.0.1:7000", 1.0, 4)

    assert issubclass(client.connection_kwargs["connection_class"], SSLConnection)


@pytest.mark.parametrize(
    "url", ["redis+cluster://h1:7000", "rediss+cluster://u:p@h1:7000,h2:7001/0"]
)
def test_settings_take_a_cluster_store(url: str) -> None:
    assert Settings.model_validate({"store_url": url}).store_url == url


@pytest.mark.parametrize(
    "url", ["redis+cluster://", "redis+cluster://:secret@", "redis+cluster://h1:7000,,h2:7001"]
)
def test_settings_refuse_a_cluster_store_without_nodes(url: str) -> None:
    with pytest.raises(ValidationError, match="names no node") as refused:
        Settings.model_validate({"store_url": url})

    assert "secret" not in str(refused.value)


@pytest.mark.parametrize("prefix", ["{sessions}:", "app{}:"])
def test_a_key_prefix_with_a_hash_tag_is_refused_on_a_cluster(prefix: str) -> None:
    with pytest.raises(ValueError, match="hash tag"):
        RedisSessionStore.from_url("redis+cluster://127.0.0.1:7000", prefix=prefix)


@pytest.mark.parametrize(
    "options", [{}, {"decode_responses": True}], ids=["bytes", "strict-decoding"]
)
def test_a_cluster_client_that_cannot_carry_compressed_turns_is_refused(
    options: dict[str, Any],
) -> None:
    client = RedisCluster(host="127.0.0.1", port=7000, **options)

    with pytest.raises(ValueError, match="surrogateescape"):
        RedisSessionStore(client)


async def test_a_cluster_nobody_answers_is_store_unavailable() -> None:
    url = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    store = RedisSessionStore.from_url(url, socket_timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.get(user_id="user-1", session_id="s-1", now_ms=now())
    finally:
        await store.close()


# --- on the cluster -------------------------------------------------------------------


async def test_users_spread_over_every_master_and_each_session_stays_on_one(
    redis_cluster: LocalCluster, key_prefix: str, cluster_stub: Stub
) -> None:
    users = [f"user-{n}" for n in range(30)]
    for user in users:
        session = await create(cluster_stub, user_id=user)
        await run(cluster_stub, session, "Hello")

    holders: dict[str, set[int]] = {user: set() for user in users}
    per_master = {}
    for port in redis_cluster.ports:
        keys = redis_cluster.keys_on(port, f"{key_prefix}*")
        per_master[port] = len(keys)
        for key in keys:
            holders[key[key.index("{") + 1 : key.index("}")]].add(port)

    assert all(count > 0 for count in per_master.values()), per_master
    # Each user's keys (index, meta, state, turns, requests, items) live on one master.
    assert all(len(ports) == 1 for ports in holders.values()), holders
    # The index, meta, turns, items and event log.
    assert sum(per_master.values()) == 5 * len(users)


async def test_a_whole_session_lifecycle_over_grpc(cluster_stub: Stub) -> None:
    stub = cluster_stub
    # Long enough to be stored zstd-compressed: binary that must survive the cluster client.
    question = "How's the weather in Shanghai? 上海天气怎么样? " * 40
    session = await create(stub, user_id="traveller", labels={"channel": "web"})
    for n in range(3):
        await run(stub, session, f"{n}: {question}")

    got = await stub.GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id="traveller")
    )
    assert got.turn_count == 3
    listed = await stub.ListSessions(pb.ListSessionsRequest(user_id="traveller"))
    assert [s.session_id for s in listed.sessions] == [session.session_id]

    change = pb.Session(
        session_id=session.session_id, user_id="traveller", state_json='{"city":"Shanghai"}'
    )
    updated = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session=change, update_mask=field_mask_pb2.FieldMask(paths=["state_json"])
        )
    )
    assert state_of(updated) == {"city": "Shanghai"}

    history = await turns(stub, session)
    assert [t.input for t in history] == [f"{n}: {question}" for n in range(3)]
    compressed = await stub.CompressSession(
        pb.CompressSessionRequest(session_id=session.session_id, user_id="traveller", keep_last=1)
    )
    assert compressed.folded_turns == 2
    assert await turns(stub, session) == history[2:]

    ended = await stub.EndSession(
        pb.EndSessionRequest(session_id=session.session_id, user_id="traveller")
    )
    assert ended.status == pb.SESSION_STATUS_ENDED
    await stub.DeleteSession(
        pb.DeleteSessionRequest(session_id=session.session_id, user_id="traveller")
    )
    error = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(session_id=session.session_id, user_id="traveller"))
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_tenants_keep_apart_and_share_the_connections(
    redis_cluster: LocalCluster, key_prefix: str
) -> None:
    store = RedisSessionStore.from_url(redis_cluster.url, prefix=key_prefix, max_connections=1)
    tenant = store.namespace("acme")
    try:
        await tenant.create(a_session(user_id="shared-user"))
        with pytest.raises(SessionNotFound):
            await store.get(user_id="shared-user", session_id="s-1", now_ms=now())
        await store.create(a_session(user_id="shared-user"))

        # One connection per node between them: calls of both queue for it.
        got = await asyncio.gather(
            *(
                side.get(user_id="shared-user", session_id="s-1", now_ms=now())
                for _ in range(20)
                for side in (store, tenant)
            )
        )
        assert len(got) == 40
    finally:
        await store.close()


async def test_listing_and_the_session_limit_read_each_users_sessions_on_its_master(
    redis_cluster: LocalCluster, key_prefix: str, cluster_store: RedisSessionStore
) -> None:
    # LIST and CREATE at the limit read sessions they find in the user's index, keys not
    # passed in KEYS: they must be in the user's slot, whichever master holds it.
    store, space = cluster_store, KeySpace(key_prefix)
    users = [f"lister-{n}" for n in range(30)]
    assert {redis_cluster.owner(space.user_index(u)) for u in users} == set(redis_cluster.ports)
    for user in users:
        first = await store.create(a_session(user_id=user, idle_timeout_ms=60_000))
        await store.create(a_session(user_id=user, session_id="s-2"))
        later = first.expire_time_ms
        # At the limit: s-1 has expired by then, so it does not count and leaves the index.
        third = a_session(user_id=user, session_id="s-3", create_time_ms=later)
        await store.create(third, max_sessions_per_user=2)
        with pytest.raises(TooManySessions):
            await store.create(a_session(user_id=user, session_id="s-4"), max_sessions_per_user=2)

        page = await store.list(user_id=user, agent_id=None, page_size=1, after=None, now_ms=later)
        rest = await store.list(
            user_id=user, agent_id=None, page_size=5, after=page.next_cursor, now_ms=later
        )

        assert [s.session_id for s in page.sessions + rest.sessions] == ["s-3", "s-2"]
        assert rest.next_cursor is None


async def test_a_session_is_served_while_and_after_its_slot_moves_to_another_master(
    redis_cluster: LocalCluster, key_prefix: str, cluster_store: RedisSessionStore
) -> None:
    store = cluster_store
    user = f"mover-{uuid.uuid4().hex[:8]}"
    session = await store.create(a_session(user_id=user))
    await store.create(a_session(user_id=user, session_id="s-2"))
    await run_turn(store, session, "before the move", "reply")
    user_key = f"{key_prefix}{{{user}}}"
    migration = redis_cluster.migrate(user_key)

    # Half-way: s-2 moved, the rest not yet. A script whose keys are split between the
    # masters cannot run (ASK, then TRYAGAIN), nor can a listing that reads s-2: both
    # are StoreUnavailable, which callers retry, not an internal error.
    migration.move([f"{user_key}:s:s-2"])
    with pytest.raises(StoreUnavailable):
        await store.list(user_id=user, agent_id=None, page_size=10, after=None, now_ms=now())
    with pytest.raises(StoreUnavailable):
        await store.get(user_id=user, session_id="s-2", now_ms=now())

    migration.finish()
    # The store still has the old slot map: MOVED sends each script to the new master.
    got = await store.get(user_id=user, session_id="s-1", now_ms=now())
    assert got.turn_count == 1
    after = await run_turn(store, session, "after the move", "reply")
    assert after.turn_count == 2
    page = await store.list(user_id=user, agent_id=None, page_size=10, after=None, now_ms=now())
    assert {s.session_id for s in page.sessions} == {"s-1", "s-2"}
    assert redis_cluster.keys_on(migration.source, f"{user_key}*") == []
    assert sorted(redis_cluster.keys_on(migration.target, f"{user_key}*")) == [
        f"{user_key}:index",
        f"{user_key}:s:s-1",
        f"{user_key}:s:s-1:events",
        f"{user_key}:s:s-1:turns",
        f"{user_key}:s:s-2",
    ]


async def test_a_dead_master_is_store_unavailable_and_the_store_recovers() -> None:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli not found: the Redis Cluster tests need it (`make setup`)")
    cluster = LocalCluster(node_timeout_ms=500)  # of its own: this test kills a master
    cluster.start()
    store = RedisSessionStore.from_url(cluster.url, prefix="down:", socket_timeout=1.0)
    try:
        users = [f"user-{n}" for n in range(12)]
        for user in users:
            await store.create(a_session(user_id=user))
        dead = cluster.ports[1]
        owners = {user: cluster.owner(f"down:{{{user}}}") for user in users}
        lost = next(user for user in users if owners[user] == dead)
        kept = next(user for user in users if owners[user] != dead)

        cluster.kill(dead)
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.get(user_id=lost, session_id="s-1", now_ms=now())
        # Once the others mark it failed, the whole cluster refuses (CLUSTERDOWN).
        await wait_until(lambda: not cluster.is_ok())
        with pytest.raises(StoreUnavailable):
            await store.get(user_id=kept, session_id="s-1", now_ms=now())

        cluster.restart(dead)  # empty: this cluster keeps no data on disk
        await wait_until(cluster.is_ok)
        await wait_until_served(store, kept)
        await store.ping()
        assert (await store.get(user_id=kept, session_id="s-1", now_ms=now())).user_id == kept
        back = await store.create(a_session(user_id=lost))
        assert (await run_turn(store, back, "back", "reply")).turn_count == 1
    finally:
        await store.close()
        cluster.stop()


async def wait_until(condition: Any, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def wait_until_served(store: RedisSessionStore, user: str, timeout_s: float = 15) -> None:
    # A node that just rejoined may still answer CLUSTERDOWN for a moment.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await store.get(user_id=user, session_id="s-1", now_ms=now())
            return
        except StoreUnavailable:
            assert time.monotonic() < deadline, "the cluster did not come back"
            await asyncio.sleep(0.05)


# --- app state, in its own slot -----------------------------------------------------


async def test_app_state_is_in_its_own_slot_and_every_user_sees_it(
    cluster_store: RedisSessionStore, redis_cluster: LocalCluster, key_prefix: str
) -> None:
    await cluster_store.create(a_session(user_id="ada", state={"app:motd": "hi"}))

    other = await cluster_store.create(a_session(user_id="bob"))

    assert other.state == {"app:motd": "hi"}
    client = cluster_client(redis_cluster.url, 1.0, 4)
    try:
        assert await client.hgetall(KeySpace(key_prefix).app_state) == {"motd": '"hi"'}
        assert await client.llen(KeySpace(key_prefix, app_outbox=True).user("ada").app_scope) == 0
    finally:
        await client.aclose()


async def test_app_state_writes_left_queued_are_applied_by_the_users_next_one(
    cluster_store: RedisSessionStore, redis_cluster: LocalCluster, key_prefix: str
) -> None:
    session = await cluster_store.create(a_session(user_id="ada"))
    # What a commit leaves queued when its process dies before applying it.
    outbox = KeySpace(key_prefix, app_outbox=True).user("ada").app_scope
    client = cluster_client(redis_cluster.url, 1.0, 4)
    try:
        await client.rpush(outbox, '[[],["left","\\"behind\\""]]')
    finally:
        await client.aclose()

    updated = await cluster_store.update(
        user_id="ada",
        session_id=session.session_id,
        patch=SessionPatch(state={"app:next": 1}),
        expected_etag=None,
        now_ms=now(),
    )

    assert updated.state == {"app:left": "behind", "app:next": 1}
