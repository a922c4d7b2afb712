"""What only the Redis store promises: its key layout, expiry, round trips and outages."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio

from agent_sessions.errors import StoreUnavailable
from agent_sessions.model import (
    Fold,
    Session,
    SessionStatus,
    StateDelta,
    TurnOutcome,
    TurnStart,
    TurnStatus,
)
from agent_sessions.store.redis import RedisSessionStore
from tests.redis_server import RedisServer

USER = "user-1"


def now() -> int:
    return int(time.time() * 1000)


def a_session(session_id: str = "s-1", **overrides: Any) -> Session:
    t = overrides.pop("now_ms", None) or now()
    fields: dict[str, Any] = {
        "session_id": session_id,
        "user_id": USER,
        "agent_id": "agent-1",
        "status": SessionStatus.ACTIVE,
        "create_time_ms": t,
        "update_time_ms": t,
        "last_activity_ms": t,
        "ttl_ms": 24 * 3_600_000,
        "idle_timeout_ms": 1_800_000,
        "max_turns": 0,
        "turn_count": 0,
        "total_turns": 0,
    }
    fields.update(overrides)
    return Session(**fields)


async def begin(
    store: RedisSessionStore,
    session_id: str = "s-1",
    text: str = "hello",
    *,
    request_id: str = "",
    history_turns: int = 20,
) -> TurnStart:
    return await store.begin_turn(
        user_id=USER,
        session_id=session_id,
        text=text,
        request_id=request_id,
        run_id="run-1",
        lease_ms=60_000,
        history_turns=history_turns,
        now_ms=now(),
    )


async def complete(
    store: RedisSessionStore,
    start: TurnStart,
    output: str = "reply",
    delta: StateDelta | None = None,
) -> Session:
    _, session = await store.finish_turn(
        user_id=USER,
        session_id=start.session.session_id,
        turn=start.turn,
        run_id="run-1",
        outcome=TurnOutcome(TurnStatus.COMPLETED, output=output, state_delta=delta or StateDelta()),
        now_ms=now(),
    )
    return session


@pytest.fixture
async def store(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[RedisSessionStore]:
    made = RedisSessionStore.from_url(redis_server.url, prefix=key_prefix)
    yield made
    await made.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of the test's Redis that sees values as the bytes stored."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def monitored(
    redis_server: RedisServer, action: Callable[[], Awaitable[object]]
) -> list[tuple[str, list[str]]]:
    """(source, command words) of every command Redis ran during ``action``.

    The source is "lua" for commands a script ran, "client" for commands sent to Redis.
    """
    control = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    watcher = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    seen: list[tuple[str, list[str]]] = []
    try:
        async with watcher.monitor() as monitor:
            await control.echo("monitor-start")
            await action()
            await control.echo("monitor-end")
            started = False
            while True:
                info = await monitor.next_command()
                words = info["command"].split(" ")
                if words[:2] == ["ECHO", "monitor-start"]:
                    started = True
                elif words[:2] == ["ECHO", "monitor-end"]:
                    return seen
                elif started:
                    source = "lua" if info["client_type"] == "lua" else "client"
                    seen.append((source, words))
    finally:
        await watcher.aclose()
        await control.aclose()


async def test_every_key_of_a_session_carries_the_user_hash_tag(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    await store.create(a_session(state={"city": "Shanghai"}))
    await complete(store, await begin(store, request_id="r-1"))

    keys = {key.decode() async for key in raw.scan_iter(match=f"{key_prefix}*")}

    assert keys == {
        f"{key_prefix}{{{USER}}}:s:s-1",
        f"{key_prefix}{{{USER}}}:s:s-1:state",
        f"{key_prefix}{{{USER}}}:s:s-1:turns",
        f"{key_prefix}{{{USER}}}:s:s-1:requests",
        f"{key_prefix}{{{USER}}}:index",
    }


async def test_session_keys_expire_at_the_session_expire_time(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    await store.create(a_session(state={"a": 1}, idle_timeout_ms=600_000))
    after = await complete(store, await begin(store, request_id="r-1"))

    base = f"{key_prefix}{{{USER}}}:s:s-1"
    expiries = [await raw.pexpiretime(base + suffix) for suffix in ("", ":state", ":turns")]
    expiries.append(await raw.pexpiretime(base + ":requests"))

    assert expiries == [after.expire_time_ms] * 4
    assert await raw.pexpiretime(f"{key_prefix}{{{USER}}}:index") >= after.expire_time_ms


async def test_a_completed_turn_leaves_earlier_turns_byte_identical(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    await store.create(a_session())
    for i in range(3):
        await complete(store, await begin(store, text=f"question {i} °C"), f"answer {i} 晴")
    turns_key = f"{key_prefix}{{{USER}}}:s:s-1:turns"
    before = await raw.lrange(turns_key, 0, -1)

    await complete(store, await begin(store, text="one more"), "done")

    after = await raw.lrange(turns_key, 0, -1)
    assert len(after) == 4
    assert after[:3] == before


async def test_begin_and_finish_turn_cost_two_redis_commands(
    store: RedisSessionStore, redis_server: RedisServer
) -> None:
    await store.create(a_session())
    # A first turn loads the scripts and opens the pooled connection.
    await complete(store, await begin(store))

    async def one_turn() -> None:
        await complete(store, await begin(store), delta=StateDelta(set={"k": "v"}))

    commands = await monitored(redis_server, one_turn)

    assert [words[0] for source, words in commands if source == "client"] == [
        "EVALSHA",
        "EVALSHA",
    ]


async def test_begin_turn_reads_only_the_history_window_of_the_turn_list(
    store: RedisSessionStore, redis_server: RedisServer, key_prefix: str
) -> None:
    await store.create(a_session())
    for i in range(6):
        await complete(store, await begin(store, text=f"q{i}"), f"a{i}")
    turns_key = f"{key_prefix}{{{USER}}}:s:s-1:turns"
    starts: list[TurnStart] = []

    async def begin_with_history() -> None:
        starts.append(await begin(store, text="q6", history_turns=3))

    commands = await monitored(redis_server, begin_with_history)

    # Everything the script did to the turn list, bar the writes that read no element.
    turn_reads = [
        words
        for source, words in commands
        if source == "lua" and words[1:2] == [turns_key] and words[0] not in ("RPUSH", "PEXPIREAT")
    ]
    assert turn_reads == [["LRANGE", turns_key, "-3", "-1"]]
    assert [t.input for t in starts[0].history] == ["q3", "q4", "q5"]


async def test_listing_removes_expired_sessions_from_the_index(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    t = now()
    await store.create(a_session("short", idle_timeout_ms=60_000, now_ms=t))
    await store.create(a_session("long", now_ms=t))
    index_key = f"{key_prefix}{{{USER}}}:index"
    assert set(await raw.zrange(index_key, 0, -1)) == {b"short", b"long"}

    await store.list(user_id=USER, agent_id=None, page_size=10, after=None, now_ms=t + 60_000)

    assert await raw.zrange(index_key, 0, -1) == [b"long"]


async def test_close_leaves_a_client_the_store_does_not_own_open(
    redis_server: RedisServer, key_prefix: str
) -> None:
    client = redis.asyncio.Redis.from_url(
        redis_server.url, decode_responses=True, encoding_errors="surrogateescape"
    )
    try:
        store = RedisSessionStore(client, prefix=key_prefix)
        await store.create(a_session())
        await store.close()

        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "options",
    [{}, {"decode_responses": True}],
    ids=["bytes", "strict-decoding"],
)
async def test_a_client_that_cannot_carry_compressed_turns_is_refused(
    redis_server: RedisServer, options: dict[str, bool]
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url, **options)
    try:
        with pytest.raises(ValueError, match="surrogateescape"):
            RedisSessionStore(client)
    finally:
        await client.aclose()


async def test_redis_down_is_store_unavailable_and_the_store_recovers_when_it_is_back(
    key_prefix: str,
) -> None:
    server = RedisServer()
    server.start()
    store = RedisSessionStore.from_url(server.url, prefix=key_prefix, socket_timeout=2.0)
    try:
        await store.create(a_session())
        server.stop()

        with pytest.raises(StoreUnavailable, match="Redis cannot be reached"):
            await store.get(user_id=USER, session_id="s-1", now_ms=now())
        with pytest.raises(StoreUnavailable, match="Redis cannot be reached"):
            await begin(store)
        with pytest.raises(StoreUnavailable):
            await store.ping()

        server.start()
        # The restarted server kept nothing, not even the scripts: all of it comes back.
        await store.create(a_session("s-2", state={"a": 1}))
        after = await complete(store, await begin(store, "s-2"), delta=StateDelta(set={"b": 2}))
        got = await store.get(user_id=USER, session_id="s-2", now_ms=now())
        assert got == after
        assert got.state == {"a": 1, "b": 2}
    finally:
        await store.close()
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


# Realistic chat text: an assistant's answer, with non-ASCII, repeated as a long reply is.
LONG_REPLY = (
    "Shanghai today: sunny, 25°C, light wind from the east. 上海今天晴, 气温二十五度。 "
    "Tomorrow clouds move in from the sea and the evening may bring showers; take an "
    "umbrella if you go out after six. Air quality is good (AQI 42). "
) * 12


async def stored_turns(raw: redis.asyncio.Redis, key_prefix: str) -> list[bytes]:
    elements = await raw.lrange(f"{key_prefix}{{{USER}}}:s:s-1:turns", 0, -1)
    return [element for element in elements if isinstance(element, bytes)]  # raw decodes nothing


async def test_a_large_finished_turn_is_stored_compressed_and_reads_back_exactly(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    await store.create(a_session())
    await complete(store, await begin(store, text="Weather? 天气?"), LONG_REPLY)

    [element] = await stored_turns(raw, key_prefix)
    page = await store.list_turns(
        user_id=USER,
        session_id="s-1",
        start_index=None,
        limit=10,
        newest_first=False,
        include_archived=False,
        now_ms=now(),
    )

    assert element.startswith(b"Z2")  # compressed, status COMPLETED
    assert len(element) < len(LONG_REPLY.encode()) / 2
    [turn] = page.turns
    assert (turn.input, turn.output) == ("Weather? 天气?", LONG_REPLY)


async def test_a_small_turn_is_stored_as_plain_json(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    await store.create(a_session())
    await complete(store, await begin(store), "short")

    [element] = await stored_turns(raw, key_prefix)

    assert element.startswith(b"{")


async def test_a_compressed_turn_replays_by_its_request_id(store: RedisSessionStore) -> None:
    await store.create(a_session())
    await complete(store, await begin(store, request_id="req-1"), LONG_REPLY)

    again = await begin(store, request_id="req-1")

    assert again.replayed
    assert again.turn.output == LONG_REPLY


async def test_compressed_turns_reach_the_agents_context(store: RedisSessionStore) -> None:
    await store.create(a_session())
    await complete(store, await begin(store, text="long"), LONG_REPLY)
    await complete(store, await begin(store, text="short"), "ok")

    start = await begin(store, text="next")

    assert [(t.input, t.output) for t in start.history] == [("long", LONG_REPLY), ("short", "ok")]


async def test_compression_can_be_turned_off(
    redis_server: RedisServer, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    store = RedisSessionStore.from_url(redis_server.url, prefix=key_prefix, compress_over_bytes=0)
    try:
        await store.create(a_session())
        await complete(store, await begin(store), LONG_REPLY)
    finally:
        await store.close()

    [element] = await stored_turns(raw, key_prefix)
    assert element.startswith(b"{")


async def test_a_redis_out_of_memory_is_store_unavailable_and_writes_nothing(
    store: RedisSessionStore, raw: redis.asyncio.Redis
) -> None:
    await store.create(a_session())
    before = await store.get(user_id=USER, session_id="s-1", now_ms=now())
    await raw.config_set("maxmemory-policy", "noeviction")
    await raw.config_set("maxmemory", 1)
    try:
        with pytest.raises(StoreUnavailable, match="out of memory"):
            await begin(store)
    finally:
        await raw.config_set("maxmemory", 0)

    assert await store.get(user_id=USER, session_id="s-1", now_ms=now()) == before


async def test_the_archive_of_folded_turns_expires_with_the_session(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    session = await store.create(a_session(idle_timeout_ms=600_000))
    for text in ("first", "second"):
        session = await complete(store, await begin(store, text=text))
    fold = Fold(
        first_index=1,
        last_index=1,
        summary="the first turn",
        folded_bytes=0,
        request_ids=(),
        archive=True,
        create_time_ms=session.create_time_ms,
    )

    folded = await store.fold(user_id=USER, session_id="s-1", fold=fold, now_ms=now())

    archive = f"{key_prefix}{{{USER}}}:s:s-1:archive"
    assert await raw.hkeys(archive) == [b"1"]
    assert await raw.pexpiretime(archive) == folded.expire_time_ms
