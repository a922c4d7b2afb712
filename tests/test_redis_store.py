"""What only the Redis store promises: its key layout, expiry, round trips and outages."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib.resources
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio
from redis.crc import key_slot
from zstandard import ZstdDecompressor

from agent_sessions.errors import StoreUnavailable, TooManySessions
from agent_sessions.model import (
    Fold,
    Item,
    ItemsWrite,
    ItemType,
    RunningTurn,
    SessionPatch,
    StateDelta,
    TokenUsage,
    Turn,
    TurnStart,
    TurnStatus,
)
from agent_sessions.store.redis import RedisSessionStore, codec, scripts
from agent_sessions.store.redis.keys import KeySpace, SessionKeys
from launchers.redis_server import RedisServer
from tests.store_helpers import USER, a_session, all_turns, begin, complete, now, renew

DELTA = StateDelta(set={"k": "v"}, delete=frozenset({"a"}))


def keys_of(key_prefix: str, session_id: str = "s-1") -> SessionKeys:
    return KeySpace(key_prefix).session(USER, session_id)


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
    redis_server: RedisServer, action: Callable[[], Awaitable[object]], prefix: str
) -> list[tuple[str, list[str]]]:
    """(source, command words) of every command Redis ran during ``action`` that names a
    key under ``prefix`` (or loads a script): the Redis is shared, and a server of
    another test may be pinging it, say.

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
                elif started and (words[0] == "SCRIPT" or any(prefix in w for w in words)):
                    source = "lua" if info["client_type"] == "lua" else "client"
                    seen.append((source, words))
    finally:
        await watcher.aclose()
        await control.aclose()


async def test_every_key_of_a_session_carries_the_user_hash_tag(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    session = await store.create(a_session(state={"city": "Shanghai"}))
    await complete(store, await begin(store, session, request_id="r-1"))

    keys = {key.decode() async for key in raw.scan_iter(match=f"{key_prefix}*")}

    assert keys == {
        f"{key_prefix}{{{USER}}}:s:s-1",
        f"{key_prefix}{{{USER}}}:s:s-1:state",
        f"{key_prefix}{{{USER}}}:s:s-1:turns",
        f"{key_prefix}{{{USER}}}:s:s-1:requests",
        f"{key_prefix}{{{USER}}}:s:s-1:events",
        f"{key_prefix}{{{USER}}}:index",
    }


async def test_session_keys_expire_at_the_session_expire_time(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    session = await store.create(a_session(state={"a": 1}, idle_timeout_ms=600_000))
    after = await complete(store, await begin(store, session, request_id="r-1"))

    keys = keys_of(key_prefix)
    expiries = [await raw.pexpiretime(k) for k in (keys.meta, keys.state, keys.turns)]
    expiries.append(await raw.pexpiretime(keys.requests))

    assert expiries == [after.expire_time_ms] * 4
    assert await raw.pexpiretime(keys.index) >= after.expire_time_ms


async def test_user_state_lives_as_long_as_the_users_longest_lived_session(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    longer = await store.create(a_session(session_id="s-2", idle_timeout_ms=3_600_000))
    await store.create(a_session(state={"user:name": "Ada"}, idle_timeout_ms=60_000))

    keys = KeySpace(key_prefix).user(USER)

    assert await raw.pexpiretime(keys.user_state) == longer.expire_time_ms
    assert await raw.hgetall(keys.user_state) == {b"name": b'"Ada"'}


async def test_app_state_is_the_one_key_that_never_expires(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    await store.create(a_session(state={"app:greeting": "hi", "user:a": 1, "b": 2}))

    keys = [key async for key in raw.scan_iter(match=f"{key_prefix}*")]
    lasting = [key.decode() for key in keys if await raw.pexpiretime(key) < 0]

    assert lasting == [f"{key_prefix}app_state"]


async def test_an_apps_keys_live_under_its_own_prefix(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    await store.app("shop").create(a_session(app="shop", state={"app:a": 1, "user:b": 2}))

    keys = {key.decode() async for key in raw.scan_iter(match=f"{key_prefix}*")}

    assert keys == {
        f"{key_prefix}a:shop:{{{USER}}}:s:s-1",
        f"{key_prefix}a:shop:{{{USER}}}:index",
        f"{key_prefix}a:shop:{{{USER}}}:user_state",
        f"{key_prefix}a:shop:app_state",
    }


async def test_a_completed_turn_leaves_earlier_turns_byte_identical(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    session = await store.create(a_session())
    for i in range(3):
        await complete(store, await begin(store, session, f"question {i} °C"), f"answer {i} 晴")
    turns_key = keys_of(key_prefix).turns
    before = await raw.lrange(turns_key, 0, -1)

    await complete(store, await begin(store, session, text="one more"), "done")

    after = await raw.lrange(turns_key, 0, -1)
    assert len(after) == 4
    assert after[:3] == before


async def test_begin_and_finish_turn_cost_two_redis_commands(
    store: RedisSessionStore, redis_server: RedisServer, key_prefix: str
) -> None:
    session = await store.create(a_session())
    # A first turn loads the scripts and opens the pooled connection.
    await complete(store, await begin(store, session))

    async def one_turn() -> None:
        await complete(store, await begin(store, session), delta=StateDelta(set={"k": "v"}))

    commands = await monitored(redis_server, one_turn, key_prefix)

    assert [words[0] for source, words in commands if source == "client"] == [
        "EVALSHA",
        "EVALSHA",
    ]


async def test_begin_turn_reads_only_the_history_window_of_the_turn_list(
    store: RedisSessionStore, redis_server: RedisServer, key_prefix: str
) -> None:
    session = await store.create(a_session())
    for i in range(6):
        await complete(store, await begin(store, session, text=f"q{i}"), f"a{i}")
    turns_key = keys_of(key_prefix).turns
    starts: list[TurnStart] = []

    async def begin_with_history() -> None:
        starts.append(await begin(store, session, text="q6", history_turns=3))

    commands = await monitored(redis_server, begin_with_history, key_prefix)

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
    await store.create(a_session(session_id="short", idle_timeout_ms=60_000, now_ms=t))
    await store.create(a_session(session_id="long", now_ms=t))
    index_key = KeySpace(key_prefix).user_index(USER)
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
        session = await store.create(a_session())
        server.stop()

        with pytest.raises(StoreUnavailable):
            await store.get(user_id=USER, session_id="s-1", now_ms=now())
        with pytest.raises(StoreUnavailable):
            await begin(store, session)
        with pytest.raises(StoreUnavailable):
            await store.ping()

        server.start()
        # The restarted server kept nothing, not even the scripts: all of it comes back.
        second = await store.create(a_session(session_id="s-2", state={"a": 1}))
        after = await complete(store, await begin(store, second), delta=StateDelta(set={"b": 2}))
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
    elements = await raw.lrange(keys_of(key_prefix).turns, 0, -1)
    return [element for element in elements if isinstance(element, bytes)]  # raw decodes nothing


async def test_a_large_finished_turn_is_stored_compressed_and_reads_back_exactly(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    session = await store.create(a_session())
    await complete(store, await begin(store, session, text="Weather? 天气?"), LONG_REPLY)

    [element] = await stored_turns(raw, key_prefix)
    [turn] = await all_turns(store, session)

    assert element.startswith(b"Z2")  # compressed, status COMPLETED
    assert len(element) < len(LONG_REPLY.encode()) / 2
    assert (turn.input, turn.output) == ("Weather? 天气?", LONG_REPLY)


async def test_a_small_turn_is_stored_as_plain_json(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    session = await store.create(a_session())
    await complete(store, await begin(store, session), "short")

    [element] = await stored_turns(raw, key_prefix)

    assert element.startswith(b"{")


async def test_a_compressed_turn_replays_by_its_request_id(store: RedisSessionStore) -> None:
    session = await store.create(a_session())
    await complete(store, await begin(store, session, request_id="req-1"), LONG_REPLY)

    again = await begin(store, session, request_id="req-1")

    assert again.replayed
    assert again.turn.output == LONG_REPLY


async def test_compressed_turns_reach_the_agents_context(store: RedisSessionStore) -> None:
    session = await store.create(a_session())
    await complete(store, await begin(store, session, text="long"), LONG_REPLY)
    await complete(store, await begin(store, session, text="short"), "ok")

    start = await begin(store, session, text="next")

    assert [(t.input, t.output) for t in start.history] == [("long", LONG_REPLY), ("short", "ok")]


async def test_compression_can_be_turned_off(
    redis_server: RedisServer, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    store = RedisSessionStore.from_url(redis_server.url, prefix=key_prefix, compress_over_bytes=0)
    try:
        session = await store.create(a_session())
        await complete(store, await begin(store, session), LONG_REPLY)
    finally:
        await store.close()

    [element] = await stored_turns(raw, key_prefix)
    assert element.startswith(b"{")


async def test_a_redis_out_of_memory_is_store_unavailable_and_writes_nothing(
    store: RedisSessionStore, raw: redis.asyncio.Redis
) -> None:
    session = await store.create(a_session())
    before = await store.get(user_id=USER, session_id="s-1", now_ms=now())
    await raw.config_set("maxmemory-policy", "noeviction")
    await raw.config_set("maxmemory", 1)
    try:
        with pytest.raises(StoreUnavailable):
            await begin(store, session)
    finally:
        await raw.config_set("maxmemory", 0)

    assert await store.get(user_id=USER, session_id="s-1", now_ms=now()) == before


async def test_the_archive_of_folded_turns_expires_with_the_session(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    session = await store.create(a_session(idle_timeout_ms=600_000))
    for text in ("first", "second"):
        session = await complete(store, await begin(store, session, text=text))
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

    archive = keys_of(key_prefix).archive
    assert await raw.hkeys(archive) == [b"1"]
    assert await raw.pexpiretime(archive) == folded.expire_time_ms


# --- keys the scripts touch -------------------------------------------------------------

# Lua commands whose every argument is a key; the others' key is their first argument.
_ALL_KEYS = {"DEL", "EXISTS"}


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


async def test_scripts_touch_their_keys_and_only_list_and_create_read_others_of_the_user(
    store: RedisSessionStore, redis_server: RedisServer, key_prefix: str
) -> None:
    user = KeySpace(key_prefix).user(USER)
    t = now()
    first = await store.create(a_session(state={"a": 1}, now_ms=t))  # loads the scripts

    async def every_call() -> None:
        await store.create(a_session(session_id="s-2", now_ms=t))
        with pytest.raises(TooManySessions):  # counts the live sessions: reads theirs
            await store.create(a_session(session_id="s-3", now_ms=t), max_sessions_per_user=2)
        imported = Turn(1, TurnStatus.COMPLETED, "q", t, "a", t, request_id="r-0")
        await store.import_session(a_session(session_id="s-4", now_ms=t), [imported])
        page = await store.list(user_id=USER, agent_id=None, page_size=2, after=None, now_ms=t)
        await store.list(
            user_id=USER, agent_id="agent-1", page_size=2, after=page.next_cursor, now_ms=t
        )
        await store.get(user_id=USER, session_id="s-1", now_ms=now())
        await store.update(
            user_id=USER,
            session_id="s-1",
            patch=SessionPatch(state={"b": 2}, labels={"l": "v"}),
            expected_etag=None,
            now_ms=now(),
        )
        for text in ("one", "two"):
            start = await begin(store, first, text=text, request_id=text)
            await renew(store, start, at=now(), lease_ms=60_000)
            await complete(store, start, delta=DELTA)
        await begin(store, first, request_id="one")  # a replay
        session = await store.get(user_id=USER, session_id="s-1", now_ms=now())
        fold = Fold(1, 1, "one", 0, ("one",), archive=True, create_time_ms=t)
        await store.fold(user_id=USER, session_id="s-1", fold=fold, now_ms=now())
        await all_turns(store, first, archived=True)
        await store.end(user_id=USER, session_id=session.session_id, now_ms=now())
        await store.delete(user_id=USER, session_id="s-1", now_ms=now())
        await store.create(a_session(session_id="s-5", external_agent=True, now_ms=now()))
        item = Item(ItemType.MESSAGE, '{"content": "hi"}', role="user", item_id="i-1")
        write = ItemsWrite((item,), "hi", "", StateDelta(set={"k": 1}), request_id="w-1")
        for _ in range(2):  # the second is a replay
            await store.write_items(user_id=USER, session_id="s-5", write=write, now_ms=now())
        replace = dataclasses.replace(write, request_id="w-2", replace_after=0)
        await store.write_items(user_id=USER, session_id="s-5", write=replace, now_ms=now())
        await store.list_items(
            user_id=USER,
            session_id="s-5",
            after=0,
            before=None,
            limit=10,
            newest_first=True,
            now_ms=now(),
        )
        await store.pop_item(user_id=USER, session_id="s-5", now_ms=now())
        await store.clear_items(user_id=USER, session_id="s-5", now_ms=now())

    commands = await monitored(redis_server, every_call, key_prefix)

    compiled = scripts.sources(app_outbox=False)
    deriving = {_sha(compiled["list"]): "LIST", _sha(compiled["create"]): "CREATE"}
    # The app's state, shared by every user, is the one key of another slot: on a
    # cluster the scripts get the user's outbox in its place (tests/test_redis_cluster.py).
    app_state = KeySpace(key_prefix).app_state
    ran: set[str] = set()
    derived_by: set[str] = set()
    declared: list[str] = []
    script = ""
    for source, words in commands:
        if source == "client" and words[0] == "SCRIPT":
            continue  # a script's first call loads it (NOSCRIPT, SCRIPT LOAD, EVALSHA)
        if source == "client":
            assert words[0] == "EVALSHA"
            script, declared = words[1], words[3 : 3 + int(words[2])]
            ran.add(script)
            in_slot = {key_slot(key.encode()) for key in declared if key != app_state}
            assert in_slot == {key_slot(USER.encode())}
            continue
        touched = words[1:] if words[0] in _ALL_KEYS else words[1:2]
        for key in touched:
            if key in declared:
                continue
            # Found in the index: another session of the user, in the user's slot.
            assert script in deriving, (words, declared)
            assert key.startswith(user.session_prefix), key
            assert key_slot(key.encode()) == key_slot(USER.encode())
            derived_by.add(deriving[script])
    assert derived_by == {"LIST", "CREATE"}
    assert len(ran) == 15  # every script but apply_app_state, which only a cluster runs


def test_every_script_file_starts_with_its_keys_and_argv() -> None:
    sources = importlib.resources.files(scripts)
    names = [
        entry.name
        for entry in sources.iterdir()
        if entry.name.endswith(".lua") and entry.name != "prelude.lua"
    ]
    assert sorted(names) == sorted(f"{name}.lua" for name in scripts.NAMES)
    for name in names:
        header = sources.joinpath(name).read_text().split("\n\n", 1)[0]
        assert header.startswith(f"-- {name.removesuffix('.lua').upper()}: "), name
        assert "\n-- KEYS[1] " in header, name
        assert "\n-- ARGV[1] " in header, name
        assert "\n-- -> " in header, name


# --- the stored format ------------------------------------------------------------------


def test_a_turn_is_stored_as_this_json() -> None:
    turn = Turn(
        index=3,
        status=TurnStatus.COMPLETED,
        input='Wie "warm"? 晴',
        create_time_ms=1000,
        output="25°C",
        complete_time_ms=2000,
        request_id="r-1",
        usage=TokenUsage(5, 7),
    )

    stored = codec.encode_turn(turn, compress_over_bytes=512)

    assert stored == (
        '{"ct":1000,"rq":"r-1","in":"Wie \\"warm\\"? 晴","s":2,"dt":2000,'
        '"out":"25°C","err":"","ti":5,"to":7}'
    )
    assert codec.open_turn(1000, "r-1", "hi") == (
        '{"ct":1000,"rq":"r-1","in":"hi","s":1,"dt":0,"out":"","err":""}'
    )
    assert codec.decode_turn(stored, 3) == turn


def test_a_large_turn_is_stored_as_z_its_status_and_the_zstd_frame_of_its_json() -> None:
    turn = Turn(3, TurnStatus.FAILED, "q", 1000, "", 2000, error=LONG_REPLY)

    stored = codec.encode_turn(turn, compress_over_bytes=512)

    assert isinstance(stored, bytes)
    assert stored.startswith(b"Z3")
    plain = codec.encode_turn(turn, compress_over_bytes=0)
    assert isinstance(plain, str)
    assert ZstdDecompressor().decompress(stored[2:]).decode() == plain
    # As a client with encoding_errors="surrogateescape" reads it back.
    assert codec.decode_turn(stored.decode("utf-8", "surrogateescape"), 3) == turn


def test_a_sessions_meta_values_decode_back_to_it() -> None:
    session = a_session(
        state={"city": "Shanghai", "n": [1, 2.5, None]},
        labels={"channel": "web"},
        summary="so far",
        version=7,
        running=RunningTurn(4, "run-4", 123),
        create_request_id="c-1",
        folded_turns=2,
        history_bytes=99,
        total_turns=4,
        turn_count=3,
    )

    values = codec.meta_values(session)
    meta = [str(value) for value in values]

    assert len(values) == len(codec.META_FIELDS)
    assert meta[codec.META_FIELDS.index("expire_ms")] == str(session.expire_time_ms)
    assert codec.decode_session("s-1", meta, codec.state_pairs(session.state)) == session


async def test_a_session_written_before_compression_and_usage_reads_and_runs_on(
    store: RedisSessionStore, raw: redis.asyncio.Redis, key_prefix: str
) -> None:
    # As earlier versions left it: no folded_turns or history_bytes in the meta hash,
    # turns without token usage.
    t = now()
    keys = keys_of(key_prefix)
    expire = t + 600_000
    old_turn = f'{{"ct":{t},"rq":"r-1","in":"q1","s":2,"dt":{t},"out":"a1","err":""}}'
    await raw.hset(
        keys.meta,
        mapping={
            "user_id": USER,
            "agent_id": "agent-1",
            "status": 1,
            "create_ms": t,
            "update_ms": t,
            "activity_ms": t,
            "ttl_ms": 24 * 3_600_000,
            "idle_ms": 600_000,
            "max_turns": 0,
            "turn_count": 1,
            "total_turns": 1,
            "version": 2,
            "labels": '{"a":"b"}',
            "summary": "",
            "run_index": 0,
            "run_id": "",
            "lease_ms": 0,
            "create_request_id": "",
            "expire_ms": expire,
        },
    )
    await raw.hset(keys.state, mapping={"city": '"Shanghai"'})
    await raw.rpush(keys.turns, old_turn)
    await raw.hset(keys.requests, mapping={"r-1": 1})
    await raw.zadd(keys.index, {"s-1": t})
    for key in (keys.meta, keys.state, keys.turns, keys.requests, keys.index):
        await raw.pexpireat(key, expire)

    got = await store.get(user_id=USER, session_id="s-1", now_ms=now())
    page = await store.list(user_id=USER, agent_id=None, page_size=10, after=None, now_ms=now())
    replay = await begin(store, got, request_id="r-1")
    after = await complete(store, await begin(store, got, text="q2"), "a2")

    assert (got.state, got.labels, got.turn_count) == ({"city": "Shanghai"}, {"a": "b"}, 1)
    assert (got.folded_turns, got.history_bytes) == (0, 0)
    assert page.sessions == [got]
    assert replay.replayed
    assert (replay.turn.output, replay.turn.usage) == ("a1", TokenUsage())
    assert (after.turn_count, after.history_bytes) == (2, len("q2a2"))


@pytest.mark.parametrize("topology", ["redis_server", "redis_cluster"])
async def test_many_calls_at_once_wait_for_a_connection_rather_than_fail(
    topology: str, key_prefix: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(topology).url
    store = RedisSessionStore.from_url(url, prefix=key_prefix, max_connections=2)
    try:
        await store.create(a_session(user_id="crowd"))
        # A pool (a cluster node's) refuses a third call at once while its 2 connections
        # are busy (MaxConnectionsError): the store queues calls instead.
        got = await asyncio.gather(
            *(store.get(user_id="crowd", session_id="s-1", now_ms=now()) for _ in range(50))
        )
        assert {session.session_id for session in got} == {"s-1"}
    finally:
        await store.close()
