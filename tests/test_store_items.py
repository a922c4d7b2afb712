"""Items in every SessionStore: the contract of write_items, list_items, pop_item and
clear_items (and fold with items), run against memory, Redis and a Redis Cluster."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from agent_sessions.errors import (
    EtagMismatch,
    ExternalAgentSession,
    MaxTurnsReached,
    SequenceMismatch,
    SessionEnded,
    SessionError,
    SessionNotFound,
    TurnInProgress,
)
from agent_sessions.model import (
    Fold,
    Item,
    ItemPage,
    ItemsWrite,
    ItemsWritten,
    ItemType,
    Session,
    StateDelta,
    Turn,
    TurnStatus,
    text_bytes,
)
from agent_sessions.store.protocol import SessionStore
from tests.store_helpers import USER, a_session, all_turns, begin, complete, now

REDIS_KINDS = ("redis", "cluster")


# --- making items and writes -----------------------------------------------------------


def message(role: str, text: str, **fields: Any) -> Item:
    payload = json.dumps({"role": role, "content": text}, ensure_ascii=False)
    return Item(ItemType.MESSAGE, payload, role=role, **fields)


def tool_call(call_id: str, **fields: Any) -> Item:
    payload = f'{{"type": "function_call", "name": "get_weather", "call_id": "{call_id}"}}'
    return Item(ItemType.TOOL_CALL, payload, name="get_weather", call_id=call_id, **fields)


async def external(store: SessionStore, **overrides: Any) -> Session:
    """A new session "s-1" of USER whose agent runs elsewhere."""
    return await store.create(a_session(external_agent=True, **overrides))


async def write(
    store: SessionStore,
    session: Session,
    *items: Item,
    at: int | None = None,
    user_id: str | None = None,
    delta: StateDelta | None = None,
    text_in: str = "question",
    text_out: str = "answer",
    **fields: Any,
) -> ItemsWritten:
    """Writes ``items`` to ``session`` as one turn; ``fields`` are ItemsWrite's conditions."""
    return await store.write_items(
        user_id=user_id or session.user_id,
        session_id=session.session_id,
        write=ItemsWrite(
            items=items,
            input=text_in,
            output=text_out,
            state_delta=delta or StateDelta(),
            **fields,
        ),
        now_ms=at or now(),
    )


async def numbered(store: SessionStore, session: Session, count: int) -> Session:
    """Writes ``count`` messages, one write each; the session after them."""
    for n in range(count):
        session = (await write(store, session, message("user", f"m{n}"))).session
    return session


async def page(
    store: SessionStore,
    session: Session,
    *,
    after: int = 0,
    before: int | None = None,
    limit: int = 100_000,
    newest_first: bool = False,
    at: int | None = None,
) -> ItemPage:
    return await store.list_items(
        user_id=session.user_id,
        session_id=session.session_id,
        after=after,
        before=before,
        limit=limit,
        newest_first=newest_first,
        now_ms=at or now(),
    )


async def items_of(store: SessionStore, session: Session, *, at: int | None = None) -> list[Item]:
    """Every item of the session's history, oldest first."""
    return (await page(store, session, at=at)).items


async def pop(store: SessionStore, session: Session, *, at: int | None = None) -> Item | None:
    item, _ = await store.pop_item(
        user_id=session.user_id, session_id=session.session_id, now_ms=at or now()
    )
    return item


async def clear(store: SessionStore, session: Session) -> Session:
    return await store.clear_items(
        user_id=session.user_id, session_id=session.session_id, now_ms=now()
    )


async def read(store: SessionStore, session: Session, *, at: int | None = None) -> Session:
    return await store.get(
        user_id=session.user_id, session_id=session.session_id, now_ms=at or now()
    )


async def fold_through(
    store: SessionStore,
    session: Session,
    last: int,
    *,
    archive: bool = False,
    summary: str = "the summary",
) -> Session:
    """Folds turns up to ``last`` with their items, as compaction plans it."""
    session = await read(store, session)
    turns = [t for t in await all_turns(store, session) if t.index <= last]
    fold = Fold(
        first_index=session.folded_turns + 1,
        last_index=last,
        summary=summary,
        folded_bytes=sum(text_bytes(t) for t in turns),
        request_ids=tuple(t.request_id for t in turns if t.request_id),
        archive=archive,
        create_time_ms=session.create_time_ms,
        items_through=max((t.last_item_sequence for t in turns), default=0),
    )
    return await store.fold(
        user_id=session.user_id, session_id=session.session_id, fold=fold, now_ms=now()
    )


def sequences(items: list[Item]) -> list[int]:
    return [item.sequence for item in items]


def ranges(turns: list[Turn]) -> list[tuple[int, int]]:
    return [(t.first_item_sequence, t.last_item_sequence) for t in turns]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything a write could change: to show that a refused one changed nothing."""

    session: Session
    items: list[Item]
    turns: list[Turn]


async def snapshot(store: SessionStore, session: Session, at: int | None = None) -> Snapshot:
    return Snapshot(
        await read(store, session, at=at),
        await items_of(store, session, at=at),
        await all_turns(store, session, at=at),
    )


# --- numbering ---------------------------------------------------------------------------


async def test_items_are_numbered_from_1_in_the_order_written(store: SessionStore) -> None:
    session = await external(store)
    t = now()

    first = await write(store, session, message("user", "hi"), tool_call("c-1"), at=t)
    second = await write(store, session, message("assistant", "hello"), at=t + 1)

    assert sequences(first.items) == [1, 2]
    assert sequences(second.items) == [3]
    assert [(i.turn_index, i.create_time_ms) for i in await items_of(store, session)] == [
        (1, t),
        (1, t),
        (2, t + 1),
    ]
    assert (second.session.last_item_sequence, second.session.total_turns) == (3, 2)


async def test_sequence_numbers_go_on_after_a_pop_a_clear_and_a_replace(
    store: SessionStore,
) -> None:
    session = await numbered(store, await external(store), 3)
    await pop(store, session)
    after_pop = await write(store, session, message("user", "a"))
    replaced = await write(store, session, message("user", "b"), replace_after=1)
    await clear(store, session)
    after_clear = await write(store, session, message("user", "c"))
    await pop(store, session)
    emptied = await write(store, session, message("user", "d"))

    assert sequences(after_pop.items) == [4]
    assert sequences(replaced.items) == [5]
    assert sequences(after_clear.items) == [6]
    assert sequences(emptied.items) == [7]
    assert sequences(await items_of(store, session)) == [7]
    assert emptied.session.last_item_sequence == 7


async def test_sequence_numbers_are_per_session(store: SessionStore) -> None:
    one = await external(store)
    other = await store.create(a_session(session_id="s-2", external_agent=True))
    await numbered(store, one, 2)

    written = await write(store, other, message("user", "first here"))

    assert sequences(written.items) == [1]


# --- each write is one turn -------------------------------------------------------------


async def test_each_write_is_one_completed_turn_that_keeps_its_item_range(
    store: SessionStore,
) -> None:
    session = await external(store)
    t = now()
    await write(
        store,
        session,
        message("user", "hi"),
        tool_call("c-1"),
        message("assistant", "hello"),
        at=t,
        text_in="hi",
        text_out="hello",
        request_id="r-1",
    )
    after = await write(
        store, session, message("user", "bye"), at=t + 5, text_in="bye", text_out=""
    )

    turns = await all_turns(store, session)
    assert [(x.index, x.status, x.input, x.output, x.request_id) for x in turns] == [
        (1, TurnStatus.COMPLETED, "hi", "hello", "r-1"),
        (2, TurnStatus.COMPLETED, "bye", "", ""),
    ]
    assert [(x.create_time_ms, x.complete_time_ms) for x in turns] == [(t, t), (t + 5, t + 5)]
    assert ranges(turns) == [(1, 3), (4, 4)]
    assert (after.session.total_turns, after.session.turn_count) == (2, 2)
    assert after.session.history_bytes == sum(text_bytes(x) for x in turns)
    assert after.session.running is None


async def test_a_write_follows_turns_the_service_ran(store: SessionStore) -> None:
    session = await store.create(a_session())
    await complete(store, await begin(store, session, "ran here"), "ok")

    written = await write(store, session, message("user", "written"))

    assert [i.turn_index for i in written.items] == [2]
    assert ranges(await all_turns(store, session)) == [(0, 0), (1, 1)]


# --- retries: request ids --------------------------------------------------------------


async def test_a_repeated_request_id_replays_the_first_write_and_writes_nothing(
    store: SessionStore,
) -> None:
    session = await external(store)
    first = await write(
        store,
        session,
        message("user", "once"),
        tool_call("c-1"),
        request_id="r-1",
        delta=StateDelta(set={"n": 1}),
    )
    before = await snapshot(store, session)

    # The retry may differ (a client's bug): the first write is what counts.
    again = await write(
        store,
        session,
        message("user", "twice"),
        request_id="r-1",
        delta=StateDelta(set={"n": 2}),
    )

    assert again.replayed and not first.replayed
    assert again.items == first.items
    assert again.session == first.session
    assert await snapshot(store, session) == before


async def test_a_retry_of_a_conditional_write_that_succeeded_is_a_replay_not_a_conflict(
    store: SessionStore,
) -> None:
    """The first attempt moved the newest item and the etag on; its retry still names
    what it read before, and must replay rather than fail."""
    session = await external(store)
    first = await write(
        store,
        session,
        message("user", "once"),
        request_id="r-1",
        expected_last_sequence=0,
        expected_etag=session.etag,
    )

    again = await write(
        store,
        session,
        message("user", "once"),
        request_id="r-1",
        expected_last_sequence=0,
        expected_etag=session.etag,
    )

    assert again.replayed
    assert again.items == first.items


async def test_a_replay_comes_before_the_refusals_of_a_new_write(store: SessionStore) -> None:
    session = await external(store, max_turns=1)
    first = await write(store, session, message("user", "once"), request_id="r-1")
    await store.end(user_id=USER, session_id="s-1", now_ms=now())

    again = await write(store, session, message("user", "once"), request_id="r-1")

    assert again.replayed
    assert again.items == first.items
    with pytest.raises(SessionEnded):
        await write(store, session, message("user", "new"), request_id="r-2")


async def test_a_replay_after_other_writes_answers_the_first_writes_items(
    store: SessionStore,
) -> None:
    session = await external(store)
    first = await write(
        store, session, message("user", "a"), message("user", "b"), request_id="r-1"
    )
    later = await write(store, session, message("user", "c"), request_id="r-2")

    again = await write(store, session, message("user", "a"), request_id="r-1")

    assert again.items == first.items
    assert again.session == later.session


async def test_a_replay_answers_the_items_the_first_write_answered_held_ones_too(
    store: SessionStore,
) -> None:
    session = await external(store)
    await write(store, session, message("user", "hi", item_id="msg-1"))
    first = await write(
        store,
        session,
        message("user", "hi", item_id="msg-1"),
        message("assistant", "hello"),
        request_id="r-1",
    )

    again = await write(
        store,
        session,
        message("user", "hi", item_id="msg-1"),
        message("assistant", "hello"),
        request_id="r-1",
    )

    assert sequences(first.items) == [1, 2]
    assert again.items == first.items


async def test_a_retried_write_that_stored_no_new_item_writes_nothing(
    store: SessionStore,
) -> None:
    session = await external(store)
    await write(store, session, message("user", "hi", item_id="msg-1"))
    await write(store, session, message("user", "hi", item_id="msg-1"), request_id="r-1")
    before = await snapshot(store, session)

    again = await write(store, session, message("user", "hi", item_id="msg-1"), request_id="r-1")

    assert again.replayed
    assert await snapshot(store, session) == before


async def test_a_retried_replace_with_no_new_item_removes_nothing_more(
    store: SessionStore,
) -> None:
    """A client compacts its history to its first item (no summary item), then appends;
    the compaction's retry must not remove the new item."""
    session = await numbered(store, await external(store), 3)
    await write(store, session, replace_after=1, request_id="compact-1")
    await write(store, session, message("user", "after the compaction"))
    before = await snapshot(store, session)

    again = await write(store, session, replace_after=1, request_id="compact-1")

    assert again.replayed
    assert again.items == []
    assert sequences(await items_of(store, session)) == [1, 4]
    assert await snapshot(store, session) == before


async def test_a_write_that_stores_no_item_keeps_an_empty_item_range(
    store: SessionStore,
) -> None:
    session = await numbered(store, await external(store), 2)

    await write(store, session, replace_after=1)
    await write(store, session, message("user", "m0", item_id="held"))
    await write(store, session, message("user", "m0", item_id="held"))

    # Its range is empty (last < first) but kept, so that a retry of it is recognised.
    assert ranges(await all_turns(store, session)) == [(1, 1), (2, 2), (3, 2), (3, 3), (4, 3)]


# --- item ids --------------------------------------------------------------------------


async def test_an_item_id_the_history_holds_is_answered_with_the_stored_item(
    store: SessionStore,
) -> None:
    session = await external(store)
    [held] = (await write(store, session, message("user", "original", item_id="msg-1"))).items

    second = await write(
        store, session, message("user", "changed", item_id="msg-1"), message("user", "new")
    )

    assert second.items[0] == held
    assert (second.items[1].sequence, second.items[1].turn_index) == (2, 2)
    assert await items_of(store, session) == [held, second.items[1]]
    assert ranges(await all_turns(store, session)) == [(1, 1), (2, 2)]
    assert second.session.last_item_sequence == 2


async def test_an_item_id_is_free_again_once_its_item_left_the_history(
    store: SessionStore,
) -> None:
    session = await external(store)
    await write(
        store, session, message("user", "one", item_id="a"), message("user", "two", item_id="b")
    )
    await pop(store, session)  # b
    await write(store, session, message("user", "kept"), replace_after=0)  # a
    await write(store, session, message("user", "three", item_id="c"))
    await clear(store, session)  # c

    again = await write(
        store,
        session,
        message("user", "a again", item_id="a"),
        message("user", "b again", item_id="b"),
        message("user", "c again", item_id="c"),
    )

    assert sequences(again.items) == [5, 6, 7]
    assert [i.item_id for i in await items_of(store, session)] == ["a", "b", "c"]


async def test_item_ids_are_per_session(store: SessionStore) -> None:
    one = await external(store)
    other = await store.create(a_session(session_id="s-2", external_agent=True))
    await write(store, one, message("user", "here", item_id="msg-1"))

    written = await write(store, other, message("user", "there", item_id="msg-1"))

    assert (written.items[0].sequence, json.loads(written.items[0].payload_json)["content"]) == (
        1,
        "there",
    )


# --- conditions ------------------------------------------------------------------------


async def test_the_expected_sequence_is_the_newest_present_items(store: SessionStore) -> None:
    session = await external(store)
    empty = await write(
        store, session, message("user", "a"), message("user", "b"), expected_last_sequence=0
    )
    await pop(store, session)

    with pytest.raises(SequenceMismatch) as stale:
        await write(store, session, message("user", "x"), expected_last_sequence=2)
    fresh = await write(store, session, message("user", "c"), expected_last_sequence=1)
    await clear(store, session)
    cleared = await write(store, session, message("user", "d"), expected_last_sequence=0)

    assert sequences(empty.items) == [1, 2]
    assert stale.value.metadata["newest_item_sequence"] == "1"
    assert sequences(fresh.items) == [3]
    assert sequences(cleared.items) == [4]


async def test_an_empty_history_expects_0_even_after_items_were_written(
    store: SessionStore,
) -> None:
    session = await numbered(store, await external(store), 1)
    await pop(store, session)

    with pytest.raises(SequenceMismatch) as stale:
        await write(store, session, message("user", "x"), expected_last_sequence=1)
    written = await write(store, session, message("user", "y"), expected_last_sequence=0)

    assert stale.value.metadata["newest_item_sequence"] == "0"
    assert sequences(written.items) == [2]


async def test_the_expected_etag_must_be_the_sessions(store: SessionStore) -> None:
    session = await external(store)
    first = await write(store, session, message("user", "a"), expected_etag=session.etag)

    with pytest.raises(EtagMismatch) as stale:
        await write(store, session, message("user", "b"), expected_etag=session.etag)
    second = await write(store, session, message("user", "c"), expected_etag=first.session.etag)

    assert first.session.etag != session.etag
    assert stale.value.metadata["etag"] == first.session.etag
    assert sequences(second.items) == [2]


async def test_a_write_to_an_ended_session_is_refused(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 1)
    await store.end(user_id=USER, session_id="s-1", now_ms=now())

    with pytest.raises(SessionEnded):
        await write(store, session, message("user", "late"))
    with pytest.raises(SessionEnded):
        await pop(store, session)
    with pytest.raises(SessionEnded):
        await clear(store, session)
    assert sequences(await items_of(store, session)) == [1]


async def test_a_write_while_a_turn_runs_is_refused(store: SessionStore) -> None:
    session = await store.create(a_session())
    await write(store, session, message("user", "before"))
    start = await begin(store, session, "running")

    with pytest.raises(TurnInProgress) as busy:
        await write(store, session, message("user", "meanwhile"))
    with pytest.raises(TurnInProgress):
        await pop(store, session)
    with pytest.raises(TurnInProgress):
        await clear(store, session)
    await complete(store, start)
    after = await write(store, session, message("user", "after"))

    assert busy.value.metadata["turn_index"] == "2"
    assert [i.turn_index for i in after.items] == [3]
    assert sequences(await items_of(store, session)) == [1, 2]


async def test_a_write_fails_a_turn_whose_lease_ran_out(store: SessionStore) -> None:
    session = await store.create(a_session())
    t = now()
    await begin(store, session, "abandoned", at=t, lease_ms=1_000)

    written = await write(store, session, message("user", "taken over"), at=t + 1_000)

    turns = await all_turns(store, session, at=t + 1_000)
    assert [(x.index, x.status, x.input) for x in turns] == [
        (1, TurnStatus.FAILED, "abandoned"),
        (2, TurnStatus.COMPLETED, "question"),
    ]
    assert "lease" in turns[0].error
    assert turns[0].complete_time_ms == t + 1_000
    assert [i.turn_index for i in written.items] == [2]
    assert written.session.running is None
    assert (written.session.turn_count, written.session.total_turns) == (1, 2)


async def test_a_pop_fails_a_turn_whose_lease_ran_out(store: SessionStore) -> None:
    session = await store.create(a_session())
    await write(store, session, message("user", "one"))
    t = now()
    await begin(store, session, "abandoned", at=t, lease_ms=1_000)

    popped = await pop(store, session, at=t + 1_000)

    assert popped is not None and popped.sequence == 1
    turns = await all_turns(store, session, at=t + 1_000)
    assert [x.status for x in turns] == [TurnStatus.COMPLETED, TurnStatus.FAILED]
    assert (await read(store, session, at=t + 1_000)).running is None


async def test_the_checks_of_a_write_come_in_the_contracts_order(
    store: SessionStore,
) -> None:
    """SessionStore.write_items: ... TurnInProgress before MaxTurnsReached, SequenceMismatch
    and EtagMismatch, so that a caller is told to wait, not to read again."""
    session = await store.create(a_session())
    await write(store, session, message("user", "one"))
    await begin(store, session, "running")

    with pytest.raises(TurnInProgress):
        await write(store, session, message("user", "x"), expected_last_sequence=0)
    with pytest.raises(TurnInProgress):
        await write(store, session, message("user", "x"), expected_etag='W/"1"')


async def test_max_turns_counts_the_written_turns(store: SessionStore) -> None:
    session = await numbered(store, await external(store, max_turns=2), 2)

    with pytest.raises(MaxTurnsReached) as full:
        await write(store, session, message("user", "third"))
    await clear(store, session)  # the counters go on: the limit stays reached
    with pytest.raises(MaxTurnsReached):
        await write(store, session, message("user", "after a clear"))

    assert full.value.metadata["max_turns"] == "2"
    assert (await read(store, session)).turn_count == 2


async def test_max_turns_counts_ran_and_written_turns_together(store: SessionStore) -> None:
    session = await store.create(a_session(max_turns=2))
    await complete(store, await begin(store, session, "ran"), "ok")
    await write(store, session, message("user", "written"))

    with pytest.raises(MaxTurnsReached):
        await begin(store, session, "one more")
    with pytest.raises(MaxTurnsReached):
        await write(store, session, message("user", "one more"))


async def test_a_write_to_another_users_session_is_not_found(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 1)
    before = await snapshot(store, session)
    mallory = dataclasses.replace(session, user_id="mallory")

    with pytest.raises(SessionNotFound):
        await write(store, mallory, message("user", "mine now"))
    with pytest.raises(SessionNotFound):
        await items_of(store, mallory)
    with pytest.raises(SessionNotFound):
        await pop(store, mallory)
    with pytest.raises(SessionNotFound):
        await clear(store, mallory)
    assert await snapshot(store, session) == before


async def test_the_items_of_an_expired_session_are_gone(store: SessionStore) -> None:
    session = await numbered(store, await external(store, idle_timeout_ms=60_000), 1)
    later = (await read(store, session)).last_activity_ms + 60_000

    with pytest.raises(SessionNotFound):
        await items_of(store, session, at=later)
    with pytest.raises(SessionNotFound):
        await write(store, session, message("user", "late"), at=later)


# --- state -----------------------------------------------------------------------------


async def test_the_state_delta_commits_with_the_items(store: SessionStore) -> None:
    session = await external(store, state={"keep": 1, "drop": 2, "swap": "old"})

    written = await write(
        store,
        session,
        message("user", "hi"),
        delta=StateDelta(
            set={"swap": {"new": [1, 2.5, None]}, "city": "上海"}, delete=frozenset({"drop"})
        ),
    )

    expected = {"keep": 1, "swap": {"new": [1, 2.5, None]}, "city": "上海"}
    assert written.session.state == expected
    assert (await read(store, session)).state == expected
    assert written.session.version == session.version + 1


async def test_a_write_is_activity_that_postpones_idle_expiry(store: SessionStore) -> None:
    session = await external(store, idle_timeout_ms=60_000)
    t = session.create_time_ms

    written = await write(store, session, message("user", "hi"), at=t + 50_000)

    assert written.session.last_activity_ms == t + 50_000
    assert (await read(store, session, at=t + 100_000)).expire_time_ms == t + 110_000


# --- reading ---------------------------------------------------------------------------


async def test_list_items_pages_between_sequence_numbers_either_way(store: SessionStore) -> None:
    session = await external(store)
    await write(store, session, *(message("user", f"m{n}") for n in range(4)))
    await write(store, session, *(message("user", f"m{n}") for n in range(4, 7)))

    middle = await page(store, session, after=2, before=6, limit=2)
    rest = await page(store, session, after=4, before=6, limit=2)
    newest = await page(store, session, limit=3, newest_first=True)
    below = await page(store, session, before=3, limit=5, newest_first=True)
    above = await page(store, session, after=5, limit=5, newest_first=True)
    beyond = await page(store, session, after=7, limit=5)

    assert (sequences(middle.items), middle.more) == ([3, 4], True)
    assert (sequences(rest.items), rest.more) == ([5], False)
    assert (sequences(newest.items), newest.more) == ([7, 6, 5], True)
    assert (sequences(below.items), below.more) == ([2, 1], False)
    assert (sequences(above.items), above.more) == ([7, 6], False)
    assert (beyond.items, beyond.more) == ([], False)


async def test_a_page_that_ends_on_the_last_item_says_no_more(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 4)

    exact = await page(store, session, limit=4)
    exact_back = await page(store, session, limit=4, newest_first=True)

    assert (sequences(exact.items), exact.more) == ([1, 2, 3, 4], False)
    assert (sequences(exact_back.items), exact_back.more) == ([4, 3, 2, 1], False)


async def test_list_items_skips_the_gaps_pops_and_replaces_leave(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 5)
    await write(store, session, message("user", "r"), replace_after=2)  # 3, 4, 5 -> 6
    await write(store, session, message("user", "x"))  # 7
    await pop(store, session)  # 7

    first = await page(store, session, limit=2)
    second = await page(store, session, after=first.items[-1].sequence, limit=2)

    assert (sequences(first.items), first.more) == ([1, 2], True)
    assert (sequences(second.items), second.more) == ([6], False)


async def test_the_items_of_a_new_session_are_none(store: SessionStore) -> None:
    session = await external(store)

    assert await page(store, session, limit=10) == ItemPage([], False)
    assert (await read(store, session)).last_item_sequence == 0


async def test_returned_items_are_those_listed(store: SessionStore) -> None:
    session = await external(store)

    written = await write(store, session, message("user", "hi"), tool_call("c-1"))

    assert await items_of(store, session) == written.items


# --- payloads, byte for byte -----------------------------------------------------------

PAYLOADS = {
    "key order and spacing": '{"z": 1,   "a": [ 3 ,2,1 ],\n\t"m" :{}}',
    "non-ASCII text": '{"city": "上海", "sky": "☀️ 22°C", "clef": "𝄞", "ls": "\u2028\u2029"}',
    "escapes kept escaped": (
        '{"e": "\\u00e9\\n\\t\\"\\\\\\/", "nul": "\\u0000", "s": "\\ud83d\\ude42"}'
    ),
    "big numbers as text": (
        '{"big": 123456789012345678901234567890, "neg": -0.0, "f": 1.50, '
        '"e": 1E+2, "tiny": 5e-324, "huge": 1e400}'
    ),
    "duplicate keys": '{"a": 1, "a": 2}',
    "looks like a stored record": '{"q":99,"t":99,"ct":0,"ty":5,"i":"x","p":"}"}',
    "a bare string": '"just text, with \\"quotes\\" and }{ braces"',
    "a bare number": "-12.500e-3",
    "null": "null",
    "an array": "[[], {}, [null, true, false]]",
    "padded": '  \r\n {"pad": true} \t\n',
    "big": '{"blob": "' + "ab\u00e9\U0001f642" * 30_000 + '"}',
}


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
async def test_a_payload_reads_back_byte_for_byte(store: SessionStore, payload: str) -> None:
    session = await external(store)

    [written] = (await write(store, session, Item(ItemType.OTHER, payload, type_name="x"))).items
    [listed] = await items_of(store, session)
    popped = await pop(store, session)

    assert written.payload_json == listed.payload_json == payload
    assert popped == listed


async def test_every_field_of_an_item_reads_back_as_written(store: SessionStore) -> None:
    session = await external(store)
    t = now()
    sent = Item(
        ItemType.TOOL_RESULT,
        '{"output": "sunny"}',
        type_name="function_call_output ☎",
        role="agent:名字 with spaces",
        name='get "weather"\\',
        call_id="call\t1\n",
        item_id="id é 🙂 {tag}",
        # The store's to set: what a caller puts there is not kept.
        sequence=42,
        turn_index=7,
        create_time_ms=1,
    )

    [written] = (await write(store, session, sent, at=t)).items

    expected = dataclasses.replace(sent, sequence=1, turn_index=1, create_time_ms=t)
    assert written == expected
    assert await items_of(store, session) == [expected]


@pytest.mark.parametrize("item_type", list(ItemType))
async def test_every_item_type_reads_back(store: SessionStore, item_type: ItemType) -> None:
    session = await external(store)

    await write(store, session, Item(item_type, "{}", type_name="t"))

    [listed] = await items_of(store, session)
    assert listed.type is item_type


# --- pop -------------------------------------------------------------------------------


async def test_pop_removes_and_returns_the_newest_item(store: SessionStore) -> None:
    session = await external(store)
    written = await write(store, session, message("user", "a"), tool_call("c-1", item_id="tc"))

    popped, after = await store.pop_item(user_id=USER, session_id="s-1", now_ms=now())

    assert popped == written.items[1]
    assert await items_of(store, session) == written.items[:1]
    assert after == await read(store, session)
    assert (after.last_item_sequence, after.total_turns) == (2, 1)
    assert after.etag != written.session.etag


async def test_pop_of_an_empty_history_returns_none(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 1)
    await pop(store, session)

    popped, after = await store.pop_item(user_id=USER, session_id="s-1", now_ms=now())

    assert popped is None
    assert after.last_item_sequence == 1
    assert await items_of(store, session) == []


async def test_pop_of_an_empty_history_changes_nothing(
    store: SessionStore,
) -> None:
    session = await external(store)
    before = await snapshot(store, session)

    popped = await pop(store, session)

    assert popped is None
    assert await snapshot(store, session) == before


async def test_pop_leaves_the_turns_and_the_state(store: SessionStore) -> None:
    session = await external(store, state={"a": 1})
    await write(store, session, message("user", "a"), message("user", "b"))
    turns = await all_turns(store, session)

    await pop(store, session)
    await pop(store, session)

    assert await all_turns(store, session) == turns
    assert (await read(store, session)).state == {"a": 1}


# --- clear -----------------------------------------------------------------------------


async def test_a_clear_empties_the_history_and_keeps_the_counters(store: SessionStore) -> None:
    session = await external(store, state={"a": 1})
    await write(store, session, message("user", "one"), delta=StateDelta(set={"b": 2}))
    await write(store, session, message("user", "two"), message("user", "three"))

    cleared = await clear(store, session)

    assert await items_of(store, session) == []
    assert await all_turns(store, session) == []
    assert (cleared.total_turns, cleared.turn_count, cleared.folded_turns) == (2, 2, 2)
    assert (cleared.summary, cleared.history_bytes, cleared.last_item_sequence) == ("", 0, 3)
    assert cleared.state == {"a": 1, "b": 2}
    assert cleared == await read(store, session)
    next_one = await write(store, session, message("user", "four"))
    assert [(i.sequence, i.turn_index) for i in next_one.items] == [(4, 3)]
    assert [t.index for t in await all_turns(store, session)] == [3]


async def test_a_clear_forgets_the_request_ids_of_the_history(store: SessionStore) -> None:
    session = await external(store)
    await write(store, session, message("user", "one"), request_id="r-1")
    await clear(store, session)

    again = await write(store, session, message("user", "one"), request_id="r-1")

    assert not again.replayed
    assert sequences(again.items) == [2]
    assert again.session.total_turns == 2


async def test_a_clear_empties_the_summary_of_earlier_folds(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 3)
    folded = await fold_through(store, session, 2, summary="two turns")

    cleared = await clear(store, session)

    assert folded.summary == "two turns"
    assert (cleared.summary, cleared.folded_turns) == ("", 3)


async def test_a_clear_of_an_empty_history_is_harmless(store: SessionStore) -> None:
    session = await external(store)

    cleared = await clear(store, session)
    written = await write(store, session, message("user", "first"))

    assert (cleared.total_turns, cleared.folded_turns) == (0, 0)
    assert [(i.sequence, i.turn_index) for i in written.items] == [(1, 1)]


# --- replace ---------------------------------------------------------------------------


async def test_replace_removes_the_items_after_a_sequence_and_appends_one_turn(
    store: SessionStore,
) -> None:
    session = await numbered(store, await external(store), 4)

    replaced = await write(store, session, message("assistant", "summary"), replace_after=1)

    assert [(i.sequence, i.turn_index) for i in replaced.items] == [(5, 5)]
    assert sequences(await items_of(store, session)) == [1, 5]
    # The turns stay: only the items go.
    assert [t.index for t in await all_turns(store, session)] == [1, 2, 3, 4, 5]


async def test_replace_after_0_replaces_every_item(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 3)

    replaced = await write(store, session, message("user", "fresh"), replace_after=0)

    assert sequences(await items_of(store, session)) == [4]
    assert sequences(replaced.items) == [4]


async def test_replace_past_the_newest_item_only_appends(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 2)

    await write(store, session, message("user", "more"), replace_after=10)

    assert sequences(await items_of(store, session)) == [1, 2, 3]


async def test_a_replace_frees_the_ids_it_removes_for_its_own_items(store: SessionStore) -> None:
    session = await external(store)
    await write(
        store, session, message("user", "a", item_id="a"), message("user", "b", item_id="b")
    )

    replaced = await write(
        store,
        session,
        message("user", "a again", item_id="a"),
        message("user", "b again", item_id="b"),
        replace_after=1,
    )

    # a (sequence 1) stays, so it is answered in its place; b left, so it is new.
    assert sequences(replaced.items) == [1, 3]
    assert [json.loads(i.payload_json)["content"] for i in await items_of(store, session)] == [
        "a",
        "b again",
    ]


async def test_a_conditional_replace_is_refused_when_stale(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 3)
    before = await snapshot(store, session)

    with pytest.raises(SequenceMismatch):
        await write(store, session, message("user", "x"), replace_after=1, expected_last_sequence=2)

    assert await snapshot(store, session) == before


# --- sessions whose agent runs elsewhere, and folding ----------------------------------


async def test_begin_turn_on_an_external_agents_session_is_refused(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 1)
    before = await snapshot(store, session)

    with pytest.raises(ExternalAgentSession):
        await begin(store, session, "run it here")

    assert await snapshot(store, session) == before


async def test_an_external_agents_session_says_so_and_keeps_its_last_sequence(
    store: SessionStore,
) -> None:
    made = await external(store)
    await numbered(store, made, 2)

    got = await read(store, made)
    listed = await store.list(user_id=USER, agent_id=None, page_size=10, after=None, now_ms=now())

    assert (made.external_agent, made.last_item_sequence) == (True, 0)
    assert (got.external_agent, got.last_item_sequence) == (True, 2)
    assert listed.sessions == [got]


async def test_a_fold_removes_the_items_of_the_folded_turns(store: SessionStore) -> None:
    session = await external(store)
    await write(store, session, message("user", "q1", item_id="q1"), message("assistant", "a1"))
    await write(store, session, message("user", "q2"), message("assistant", "a2"))
    kept = await write(store, session, message("user", "q3"), message("assistant", "a3"))

    folded = await fold_through(store, session, 2)
    again = await write(store, session, message("user", "q1 again", item_id="q1"))

    assert (folded.folded_turns, folded.last_item_sequence) == (2, 6)
    assert await items_of(store, session) == [*kept.items, *again.items]
    assert sequences(again.items) == [7]  # its id left with it


async def test_a_fold_leaves_the_items_after_those_it_names(store: SessionStore) -> None:
    session = await numbered(store, await external(store), 3)
    session = await read(store, session)
    fold = Fold(
        first_index=1,
        last_index=1,
        summary="s",
        folded_bytes=text_bytes((await all_turns(store, session))[0]),
        request_ids=(),
        archive=False,
        create_time_ms=session.create_time_ms,
        items_through=0,  # a fold that names no items removes none
    )

    await store.fold(user_id=USER, session_id="s-1", fold=fold, now_ms=now())

    assert sequences(await items_of(store, session)) == [1, 2, 3]


async def test_a_folded_write_without_its_archive_forgets_its_request_id(
    store: SessionStore,
) -> None:
    session = await external(store)
    await write(store, session, message("user", "one"), request_id="r-1")
    await write(store, session, message("user", "two"))
    await fold_through(store, session, 1)

    again = await write(store, session, message("user", "one"), request_id="r-1")

    assert not again.replayed
    assert sequences(again.items) == [3]


async def test_an_archived_write_still_replays_and_writes_nothing(store: SessionStore) -> None:
    session = await external(store)
    await write(store, session, message("user", "one"), request_id="r-1")
    await write(store, session, message("user", "two"))
    await fold_through(store, session, 1, archive=True)
    before = await snapshot(store, session)

    again = await write(store, session, message("user", "one"), request_id="r-1")

    assert again.replayed
    assert await snapshot(store, session) == before


# --- a refused write leaves nothing behind ---------------------------------------------

REFUSALS = ["sequence", "etag", "ended", "max_turns", "running", "another_user"]


async def refusing(store: SessionStore, kind: str) -> tuple[Session, dict[str, Any]]:
    """A session with items, state and a history, set up so that a write of ``kind`` is
    refused; and the write's fields that bring the refusal."""
    made = await store.create(
        a_session(
            state={"keep": 1, "drop": 2},
            max_turns=2 if kind == "max_turns" else 0,
            external_agent=kind != "running",
        )
    )
    await write(store, made, message("user", "one", item_id="a"), request_id="r-0")
    await write(store, made, message("user", "two", item_id="b"), tool_call("c-1"))
    fields: dict[str, Any] = {}
    if kind == "sequence":
        fields["expected_last_sequence"] = 2
    elif kind == "etag":
        fields["expected_etag"] = made.etag
    elif kind == "ended":
        await store.end(user_id=USER, session_id="s-1", now_ms=now())
    elif kind == "running":
        await begin(store, made, "running")
    elif kind == "another_user":
        fields["user_id"] = "mallory"
    return made, fields


@pytest.mark.parametrize("replace", [False, True], ids=["append", "replace"])
@pytest.mark.parametrize("kind", REFUSALS)
async def test_a_refused_write_leaves_nothing_behind(
    store: SessionStore, kind: str, replace: bool
) -> None:
    session, fields = await refusing(store, kind)
    before = await snapshot(store, session)

    with pytest.raises(SessionError):
        await write(
            store,
            session,
            message("user", "held", item_id="a"),
            message("user", "new", item_id="z"),
            delta=StateDelta(set={"new": True}, delete=frozenset({"keep", "drop"})),
            request_id="r-refused",
            replace_after=0 if replace else None,
            **fields,
        )

    assert await snapshot(store, session) == before


@pytest.mark.parametrize("kind", ["sequence", "etag"])
async def test_the_request_id_of_a_refused_write_is_not_taken(
    store: SessionStore, kind: str
) -> None:
    session, fields = await refusing(store, kind)
    with pytest.raises(SessionError):
        await write(store, session, message("user", "x"), request_id="r-1", **fields)

    written = await write(store, session, message("user", "x"), request_id="r-1")

    assert not written.replayed
    assert sequences(written.items) == [4]


async def test_a_write_refused_after_a_lease_ran_out_leaves_nothing_behind(
    store: SessionStore,
) -> None:
    session = await store.create(a_session())
    await write(store, session, message("user", "one"))
    t = now()
    await begin(store, session, "abandoned", at=t, lease_ms=1_000)
    before = await snapshot(store, session, at=t + 1_000)

    with pytest.raises(SequenceMismatch):
        await write(store, session, message("user", "x"), expected_last_sequence=0, at=t + 1_000)

    assert await snapshot(store, session, at=t + 1_000) == before
