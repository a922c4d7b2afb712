"""A session's event log in every SessionStore: what each write logs, and what a watch
yields (from now, from a sequence number, past a trimmed window, to the session's end)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from agent_sessions.errors import RunSuperseded, SessionNotFound, TurnInProgress
from agent_sessions.model import (
    Item,
    ItemsWrite,
    ItemType,
    Session,
    SessionPatch,
    StateDelta,
    TurnOutcome,
    TurnStart,
    TurnStatus,
)
from agent_sessions.session_events import EventKind, EventWindow, SessionEvent
from agent_sessions.store.memory import MemorySessionStore
from agent_sessions.store.protocol import SessionStore
from tests.clock import ManualClock
from tests.store_helpers import HOUR_MS, USER, a_session, begin, complete, now

TIMEOUT_S = 5.0
"""How long a test waits for an event before it fails (rather than hang)."""

WINDOW = EventWindow()
"""The window of the stores of the `store` fixture: the default one."""


# --- helpers ---------------------------------------------------------------------------


@asynccontextmanager
async def watch(
    store: SessionStore,
    session: Session,
    *,
    after: int | None,
    user_id: str | None = None,
    clock: ManualClock | None = None,
    live: bool = True,
) -> AsyncIterator[AsyncIterator[SessionEvent]]:
    """A watch of ``session``, closed when the ``async with`` block ends."""
    events = store.watch(
        user_id=user_id or session.user_id,
        session_id=session.session_id,
        after=after,
        clock=clock or now,
        live=live,
    )
    try:
        yield events
    finally:
        if isinstance(events, AsyncGenerator):
            await events.aclose()


async def next_event(events: AsyncIterator[SessionEvent]) -> SessionEvent:
    return await asyncio.wait_for(anext(events), TIMEOUT_S)


async def take(events: AsyncIterator[SessionEvent], count: int) -> list[SessionEvent]:
    return [await next_event(events) for _ in range(count)]


async def everything(events: AsyncIterator[SessionEvent]) -> list[SessionEvent]:
    return [event async for event in events]


async def settled() -> None:
    """Lets a watch started in a task reach the point where it waits for events."""
    await asyncio.sleep(0.1)


async def touch(store: SessionStore, session: Session, *, at: int | None = None) -> Session:
    """An update that changes nothing but the session's version: one SESSION_UPDATED."""
    return await store.update(
        user_id=session.user_id,
        session_id=session.session_id,
        patch=SessionPatch(),
        expected_etag=None,
        now_ms=at or now(),
    )


def message(text: str) -> Item:
    return Item(ItemType.MESSAGE, f'{{"role": "assistant", "content": "{text}"}}', role="assistant")


async def publish(
    store: SessionStore, start: TurnStart, *events: SessionEvent, run_id: str = "run-1"
) -> None:
    await store.publish(
        user_id=start.session.user_id,
        session_id=start.session.session_id,
        run_id=run_id,
        turn_index=start.turn.index,
        events=events,
        now_ms=now(),
    )


def kinds(events: list[SessionEvent]) -> list[EventKind]:
    return [event.kind for event in events]


def sequences(events: list[SessionEvent]) -> list[int]:
    return [event.sequence for event in events]


# --- what writes log -------------------------------------------------------------------


async def test_events_are_numbered_from_1_in_write_order(store: SessionStore) -> None:
    session = await store.create(a_session())
    await touch(store, session)
    await complete(store, await begin(store, session))
    await store.end(user_id=USER, session_id="s-1", now_ms=now())

    async with watch(store, session, after=0) as events:
        logged = await take(events, 4)

    assert kinds(logged) == [
        EventKind.SESSION_UPDATED,
        EventKind.RUN_STARTED,
        EventKind.TURN_COMMITTED,
        EventKind.ENDED,
    ]
    assert sequences(logged) == [1, 2, 3, 4]


async def test_a_run_logs_started_then_published_then_pending_then_committed(
    store: SessionStore,
) -> None:
    session = await store.create(a_session())
    start = await begin(store, session, request_id="req-1")
    await publish(
        store,
        start,
        SessionEvent(kind=EventKind.DELTA, text="he"),
        SessionEvent(kind=EventKind.ITEM, item=message("hello")),
    )
    turn, after = await store.finish_turn(
        user_id=USER,
        session_id="s-1",
        turn=start.turn,
        run_id="run-1",
        outcome=TurnOutcome(TurnStatus.COMPLETED, output="hello"),
        now_ms=now(),
        pending=(SessionEvent(kind=EventKind.DELTA, text="llo"),),
    )

    async with watch(store, session, after=0) as events:
        logged = await take(events, 5)

    assert start.event_sequence == 1
    assert kinds(logged) == [
        EventKind.RUN_STARTED,
        EventKind.DELTA,
        EventKind.ITEM,
        EventKind.DELTA,
        EventKind.TURN_COMMITTED,
    ]
    assert all((e.run_id, e.turn_index) == ("run-1", 1) for e in logged)
    assert logged[0].request_id == "req-1"
    assert [e.text for e in logged[1:4:2]] == ["he", "llo"]
    assert logged[2].item == message("hello")
    assert logged[4].turn == turn
    assert logged[4].session == after


async def test_a_failed_run_logs_its_commit_too(store: SessionStore) -> None:
    session = await store.create(a_session())
    start = await begin(store, session)
    await store.finish_turn(
        user_id=USER,
        session_id="s-1",
        turn=start.turn,
        run_id="run-1",
        outcome=TurnOutcome(TurnStatus.FAILED, error="boom"),
        now_ms=now(),
    )

    async with watch(store, session, after=start.event_sequence) as events:
        committed = await next_event(events)

    assert committed.kind is EventKind.TURN_COMMITTED
    assert committed.turn is not None
    assert committed.turn.status is TurnStatus.FAILED


async def test_publish_by_a_superseded_run_raises_and_logs_nothing(store: SessionStore) -> None:
    session = await store.create(a_session())
    t = now()
    first = await begin(store, session, run_id="run-1", at=t, lease_ms=1)
    await begin(store, session, run_id="run-2", at=t + 1000)  # run-1's lease ran out

    with pytest.raises(RunSuperseded):
        await publish(store, first, SessionEvent(kind=EventKind.DELTA, text="late"))
    await touch(store, session, at=t + 1000)

    async with watch(store, session, after=0) as events:
        logged = await take(events, 3)

    assert kinds(logged) == [
        EventKind.RUN_STARTED,
        EventKind.RUN_STARTED,
        EventKind.SESSION_UPDATED,
    ]
    assert sequences(logged) == [1, 2, 3]


async def test_written_items_log_their_turn_and_a_replay_logs_nothing(
    store: SessionStore,
) -> None:
    session = await store.create(a_session(external_agent=True))
    write = ItemsWrite(
        items=(message("hi"),), input="q", output="a", state_delta=StateDelta(), request_id="w-1"
    )
    written = await store.write_items(user_id=USER, session_id="s-1", write=write, now_ms=now())
    await store.write_items(user_id=USER, session_id="s-1", write=write, now_ms=now())
    await touch(store, session)

    async with watch(store, session, after=0) as events:
        logged = await take(events, 2)

    assert kinds(logged) == [EventKind.TURN_COMMITTED, EventKind.SESSION_UPDATED]
    committed = logged[0]
    assert (committed.run_id, committed.turn_index) == ("", 1)
    assert committed.turn is not None
    assert list(committed.turn.items) == written.items
    assert committed.session == written.session


async def test_ending_twice_logs_one_ended(store: SessionStore) -> None:
    session = await store.create(a_session())
    await store.end(user_id=USER, session_id="s-1", now_ms=now())
    await store.end(user_id=USER, session_id="s-1", now_ms=now())
    await touch(store, session)

    async with watch(store, session, after=0) as events:
        logged = await take(events, 2)

    assert kinds(logged) == [EventKind.ENDED, EventKind.SESSION_UPDATED]


async def test_a_session_made_again_after_its_deletion_numbers_on(store: SessionStore) -> None:
    session = await store.create(a_session())
    await touch(store, session)
    await store.delete(user_id=USER, session_id="s-1", now_ms=now())
    again = await store.create(a_session())
    await touch(store, again)

    async with watch(store, again, after=2) as events:
        updated = await next_event(events)

    assert (updated.kind, updated.sequence) == (EventKind.SESSION_UPDATED, 3)


# --- retries of a running turn ---------------------------------------------------------


async def test_a_retry_with_the_running_turns_request_id_names_its_run(
    store: SessionStore,
) -> None:
    session = await store.create(a_session())
    await begin(store, session, run_id="run-1", request_id="req-1")

    with pytest.raises(TurnInProgress) as raised:
        await begin(store, session, run_id="run-2", request_id="req-1")

    assert (raised.value.index, raised.value.run_id) == (1, "run-1")


async def test_another_request_while_a_turn_runs_names_no_run(store: SessionStore) -> None:
    session = await store.create(a_session())
    await begin(store, session, run_id="run-1", request_id="req-1")

    with pytest.raises(TurnInProgress) as raised:
        await begin(store, session, run_id="run-2", request_id="req-2")

    assert raised.value.run_id == ""


# --- watching --------------------------------------------------------------------------


async def test_a_watch_from_now_sees_only_new_events(store: SessionStore) -> None:
    session = await store.create(a_session())
    await touch(store, session)

    async with watch(store, session, after=None) as events:
        first = asyncio.create_task(next_event(events))
        await settled()
        await touch(store, session)
        event = await first

    assert (event.kind, event.sequence) == (EventKind.SESSION_UPDATED, 2)


async def test_a_watch_after_n_gets_exactly_the_events_it_missed(store: SessionStore) -> None:
    session = await store.create(a_session())
    for _ in range(5):
        await touch(store, session)

    async with watch(store, session, after=2) as events:
        missed = await take(events, 3)
        following = asyncio.create_task(next_event(events))
        await settled()
        await touch(store, session)
        live = await following

    assert sequences(missed) == [3, 4, 5]
    assert live.sequence == 6


async def test_events_older_than_the_window_leave_a_gap_then_the_held_ones(
    store: SessionStore,
) -> None:
    t = now()
    session = await store.create(a_session(now_ms=t))
    await touch(store, session, at=t)
    await touch(store, session, at=t + WINDOW.max_age_ms + 1)  # the first is too old now

    async with watch(store, session, after=0) as events:
        logged = await take(events, 2)

    assert logged[0].kind is EventKind.GAP
    assert (logged[0].sequence, logged[0].first_sequence) == (1, 2)
    assert (logged[1].kind, logged[1].sequence) == (EventKind.SESSION_UPDATED, 2)


async def test_a_watcher_that_falls_behind_the_window_gets_a_gap_then_reads_on(
    store: SessionStore,
) -> None:
    session = await store.create(a_session())
    start = await begin(store, session)
    deltas = [SessionEvent(kind=EventKind.DELTA, text="x")] * (WINDOW.max_events + 1)

    async with watch(store, session, after=0) as events:
        started = await next_event(events)
        await publish(store, start, *deltas)  # sequences 2 .. max_events + 2
        gap, held = await take(events, 2)

    assert started.kind is EventKind.RUN_STARTED
    assert (gap.kind, gap.sequence, gap.first_sequence) == (EventKind.GAP, 2, 3)
    assert (held.kind, held.sequence) == (EventKind.DELTA, 3)


async def test_a_watch_that_is_not_live_ends_after_the_held_events(
    store: SessionStore,
) -> None:
    session = await store.create(a_session())
    for _ in range(3):
        await touch(store, session)

    async with watch(store, session, after=1, live=False) as events:
        held = await asyncio.wait_for(everything(events), TIMEOUT_S)

    assert sequences(held) == [2, 3]


async def test_a_run_begun_or_publishing_while_someone_watches_is_told_so(
    store: SessionStore,
) -> None:
    session = await store.create(a_session())
    unwatched = await begin(store, session)
    await complete(store, unwatched)

    async with watch(store, session, after=None) as events:
        waiting = asyncio.create_task(next_event(events))
        await settled()
        watched = await begin(store, session)
        publishing = await store.publish(
            user_id=session.user_id,
            session_id=session.session_id,
            run_id="run-1",
            turn_index=watched.turn.index,
            events=[SessionEvent(kind=EventKind.DELTA, text="x")],
            now_ms=now(),
        )
        await waiting

    assert (unwatched.watched, watched.watched, publishing) == (False, True, True)


async def test_watching_another_users_session_is_not_found(store: SessionStore) -> None:
    session = await store.create(a_session(user_id="alice"))

    async with watch(store, session, after=None, user_id="mallory") as events:
        with pytest.raises(SessionNotFound):
            await next_event(events)


async def test_a_deletion_ends_the_watch(store: SessionStore) -> None:
    session = await store.create(a_session())
    await touch(store, session)

    async with watch(store, session, after=None) as events:
        first = asyncio.create_task(next_event(events))
        await settled()
        await store.delete(user_id=USER, session_id="s-1", now_ms=now())
        deleted = await first
        with pytest.raises(StopAsyncIteration):
            await next_event(events)

    assert (deleted.kind, deleted.sequence) == (EventKind.DELETED, 2)


async def test_an_expired_session_ends_the_watch_with_expired(store: SessionStore) -> None:
    clock = ManualClock()
    session = await store.create(a_session(now_ms=clock(), idle_timeout_ms=HOUR_MS))
    await touch(store, session, at=clock())

    async with watch(store, session, after=None, clock=clock) as events:
        first = asyncio.create_task(
            asyncio.wait_for(anext(events), TIMEOUT_S + WINDOW.idle_check_ms / 1000)
        )
        await settled()
        clock.advance(timedelta(hours=2))
        with pytest.raises(SessionNotFound):  # a store may notice the expiry now
            await store.get(user_id=USER, session_id="s-1", now_ms=clock())
        expired = await first
        with pytest.raises(StopAsyncIteration):
            await next_event(events)

    assert (expired.kind, expired.sequence) == (EventKind.EXPIRED, 2)


# --- the memory store's own window -----------------------------------------------------

SMALL = EventWindow(max_events=3, max_age_ms=HOUR_MS, deleted_grace_ms=1000, idle_check_ms=20)


@pytest.fixture
def small_window_store() -> MemorySessionStore:
    """A memory store with a small window, whatever store the module's tests run on."""
    return MemorySessionStore(event_window=SMALL)


async def test_a_deleted_sessions_log_numbers_from_1_again_once_its_grace_is_over(
    small_window_store: MemorySessionStore,
) -> None:
    store = small_window_store
    t = now()
    session = await store.create(a_session(now_ms=t))
    await touch(store, session, at=t)
    await store.delete(user_id=USER, session_id="s-1", now_ms=t)
    later = t + SMALL.deleted_grace_ms
    again = await store.create(a_session(now_ms=later))
    await touch(store, again, at=later)

    async with watch(store, again, after=0) as events:
        updated = await next_event(events)

    assert (updated.kind, updated.sequence) == (EventKind.SESSION_UPDATED, 1)


async def test_an_idle_watch_finds_its_session_expired_by_itself(
    small_window_store: MemorySessionStore,
) -> None:
    store = small_window_store
    clock = ManualClock()
    session = await store.create(a_session(now_ms=clock(), idle_timeout_ms=HOUR_MS))

    async with watch(store, session, after=None, clock=clock) as events:
        first = asyncio.create_task(next_event(events))
        await settled()
        clock.advance(timedelta(hours=2))  # nothing tells the store: the watch checks
        expired = await first

    assert (expired.kind, expired.sequence) == (EventKind.EXPIRED, 1)


async def test_a_closed_watch_leaves_no_waiter_behind(
    small_window_store: MemorySessionStore,
) -> None:
    store = small_window_store
    session = await store.create(a_session())

    async with watch(store, session, after=None) as events:
        waiting = asyncio.create_task(next_event(events))
        await settled()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    assert all(not log.waiters for log in store._logs.values())


async def test_the_stores_of_apps_and_namespaces_keep_the_same_window(
    small_window_store: MemorySessionStore,
) -> None:
    for other in (small_window_store.app("a"), small_window_store.namespace("t")):
        session = await other.create(a_session())
        for _ in range(SMALL.max_events + 1):
            await touch(other, session)

        async with watch(other, session, after=0) as events:
            gap = await next_event(events)

        assert (gap.kind, gap.first_sequence) == (EventKind.GAP, 2)
