"""The behaviour every SessionStore shares, run against memory and a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_sessions.errors import (
    EtagMismatch,
    MaxTurnsReached,
    RunSuperseded,
    SessionAlreadyExists,
    SessionEnded,
    SessionNotFound,
    TooManySessions,
    TurnInProgress,
)
from agent_sessions.model import (
    Session,
    SessionPatch,
    SessionStatus,
    StateDelta,
    Turn,
    TurnOutcome,
    TurnStart,
    TurnStatus,
)
from agent_sessions.store.protocol import SessionStore
from tests.store_helpers import (
    HOUR_MS,
    a_session,
    all_turns,
    begin,
    complete,
    fail,
    now,
    renew,
    run_turn,
    turns_page,
)

# --- create and get ---------------------------------------------------------------


async def test_created_session_reads_back_with_its_state_and_labels(store: SessionStore) -> None:
    made = a_session(
        state={"city": "Shanghai", "n": [1, 2.5, None, {"x": True}]}, labels={"a": "b"}
    )
    await store.create(made)

    got = await store.get(user_id="user-1", session_id="s-1", now_ms=now())

    assert got == made


async def test_the_labels_passed_to_create_are_not_shared_with_the_store(
    store: SessionStore,
) -> None:
    labels = {"channel": "web"}
    await store.create(a_session(labels=labels))

    labels["channel"] = "changed by the caller"

    got = await store.get(user_id="user-1", session_id="s-1", now_ms=now())
    assert got.labels == {"channel": "web"}


async def test_the_labels_of_a_returned_session_are_not_shared_with_the_store(
    store: SessionStore,
) -> None:
    await store.create(a_session(labels={"channel": "web"}))
    first = await store.get(user_id="user-1", session_id="s-1", now_ms=now())

    first.labels["channel"] = "changed by the caller"

    got = await store.get(user_id="user-1", session_id="s-1", now_ms=now())
    assert got.labels == {"channel": "web"}


async def test_create_with_a_taken_id_raises_already_exists(store: SessionStore) -> None:
    await store.create(a_session())
    with pytest.raises(SessionAlreadyExists):
        await store.create(a_session(agent_id="other"))


async def test_the_same_session_id_under_two_users_are_two_sessions(store: SessionStore) -> None:
    await store.create(a_session(user_id="alice", state={"who": "alice"}))
    await store.create(a_session(user_id="bob", state={"who": "bob"}))

    alice = await store.get(user_id="alice", session_id="s-1", now_ms=now())

    assert alice.state == {"who": "alice"}


async def test_another_users_session_is_not_found(store: SessionStore) -> None:
    await store.create(a_session(user_id="alice"))
    with pytest.raises(SessionNotFound):
        await store.get(user_id="mallory", session_id="s-1", now_ms=now())


async def test_unknown_session_is_not_found(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        await store.get(user_id="user-1", session_id="nope", now_ms=now())


async def test_returned_state_is_a_copy(store: SessionStore) -> None:
    await store.create(a_session(state={"items": [1]}))
    got = await store.get(user_id="user-1", session_id="s-1", now_ms=now())
    got.state["items"].append(2)

    again = await store.get(user_id="user-1", session_id="s-1", now_ms=now())

    assert again.state == {"items": [1]}


# --- expiry --------------------------------------------------------------------------


async def test_session_past_its_ttl_is_not_found(store: SessionStore) -> None:
    made = await store.create(a_session(ttl_ms=HOUR_MS, idle_timeout_ms=2 * HOUR_MS))
    with pytest.raises(SessionNotFound):
        await store.get(user_id="user-1", session_id="s-1", now_ms=made.create_time_ms + HOUR_MS)


async def test_session_idle_past_its_idle_timeout_is_not_found(store: SessionStore) -> None:
    made = await store.create(a_session(idle_timeout_ms=60_000))
    at = made.create_time_ms + 60_000
    with pytest.raises(SessionNotFound):
        await store.get(user_id="user-1", session_id="s-1", now_ms=at)


async def test_a_turn_is_activity_that_postpones_idle_expiry(store: SessionStore) -> None:
    made = await store.create(a_session(idle_timeout_ms=60_000))
    await begin(store, made, at=made.create_time_ms + 50_000)

    got = await store.get(user_id="user-1", session_id="s-1", now_ms=made.create_time_ms + 100_000)

    assert got.expire_time_ms == made.create_time_ms + 110_000


async def test_activity_never_extends_a_session_past_its_ttl(store: SessionStore) -> None:
    made = await store.create(a_session(ttl_ms=90_000, idle_timeout_ms=60_000))
    start = await begin(store, made, at=made.create_time_ms + 50_000)

    assert start.session.expire_time_ms == made.create_time_ms + 90_000


async def test_expired_sessions_disappear_from_listings(store: SessionStore) -> None:
    t = now()
    await store.create(a_session(session_id="short", idle_timeout_ms=60_000, now_ms=t))
    await store.create(a_session(session_id="long", now_ms=t))

    page = await store.list(
        user_id="user-1", agent_id=None, page_size=10, after=None, now_ms=t + 60_000
    )

    assert [s.session_id for s in page.sessions] == ["long"]


# --- listing -------------------------------------------------------------------------


async def test_list_returns_most_recent_activity_first_in_pages(store: SessionStore) -> None:
    t = now()
    for i in range(5):
        await store.create(a_session(session_id=f"s-{i}", now_ms=t + i))
    await store.create(a_session(session_id="other-user", user_id="user-2", now_ms=t))

    first = await store.list(user_id="user-1", agent_id=None, page_size=3, after=None, now_ms=t + 9)
    rest = await store.list(
        user_id="user-1", agent_id=None, page_size=3, after=first.next_cursor, now_ms=t + 9
    )

    assert [s.session_id for s in first.sessions] == ["s-4", "s-3", "s-2"]
    assert [s.session_id for s in rest.sessions] == ["s-1", "s-0"]
    assert rest.next_cursor is None


async def test_list_filters_by_agent(store: SessionStore) -> None:
    t = now()
    for i in range(6):
        await store.create(a_session(session_id=f"s-{i}", agent_id=f"agent-{i % 2}", now_ms=t + i))

    page = await store.list(user_id="user-1", agent_id="agent-1", page_size=2, after=None, now_ms=t)
    rest = await store.list(
        user_id="user-1", agent_id="agent-1", page_size=2, after=page.next_cursor, now_ms=t
    )

    assert [s.session_id for s in page.sessions] == ["s-5", "s-3"]
    assert [s.session_id for s in rest.sessions] == ["s-1"]


async def test_a_turn_moves_a_session_to_the_top_of_the_list(store: SessionStore) -> None:
    t = now()
    old = await store.create(a_session(session_id="old", now_ms=t - 10))
    await store.create(a_session(session_id="new", now_ms=t - 5))
    await begin(store, old, at=t)

    page = await store.list(user_id="user-1", agent_id=None, page_size=10, after=None, now_ms=t)

    assert [s.session_id for s in page.sessions] == ["old", "new"]


# --- update, end, delete ------------------------------------------------------------


async def test_update_replaces_state_and_labels_and_changes_the_etag(store: SessionStore) -> None:
    made = await store.create(a_session(state={"a": 1}, labels={"x": "1"}))

    updated = await store.update(
        user_id="user-1",
        session_id="s-1",
        patch=SessionPatch(state={"b": 2}, labels={"y": "2"}, max_turns=5),
        expected_etag=made.etag,
        now_ms=now(),
    )

    assert (updated.state, updated.labels, updated.max_turns) == ({"b": 2}, {"y": "2"}, 5)
    assert updated.etag != made.etag
    assert await store.get(user_id="user-1", session_id="s-1", now_ms=now()) == updated


async def test_update_leaves_fields_outside_the_patch_alone(store: SessionStore) -> None:
    await store.create(a_session(state={"a": 1}, labels={"x": "1"}))

    updated = await store.update(
        user_id="user-1",
        session_id="s-1",
        patch=SessionPatch(ttl_ms=HOUR_MS),
        expected_etag=None,
        now_ms=now(),
    )

    assert (updated.state, updated.labels, updated.ttl_ms) == ({"a": 1}, {"x": "1"}, HOUR_MS)


async def test_update_with_a_stale_etag_is_a_conflict_and_changes_nothing(
    store: SessionStore,
) -> None:
    made = await store.create(a_session(state={"a": 1}))
    await store.update(
        user_id="user-1",
        session_id="s-1",
        patch=SessionPatch(state={"a": 2}),
        expected_etag=None,
        now_ms=now(),
    )

    with pytest.raises(EtagMismatch):
        await store.update(
            user_id="user-1",
            session_id="s-1",
            patch=SessionPatch(state={"a": 3}),
            expected_etag=made.etag,
            now_ms=now(),
        )
    assert (await store.get(user_id="user-1", session_id="s-1", now_ms=now())).state == {"a": 2}


async def test_ended_session_stays_readable_and_refuses_turns(store: SessionStore) -> None:
    made = await store.create(a_session())

    ended = await store.end(user_id="user-1", session_id="s-1", now_ms=now())

    assert ended.status is SessionStatus.ENDED
    assert (await store.get(user_id="user-1", session_id="s-1", now_ms=now())).status is (
        SessionStatus.ENDED
    )
    with pytest.raises(SessionEnded):
        await begin(store, made)


async def test_ending_twice_is_harmless(store: SessionStore) -> None:
    await store.create(a_session())
    first = await store.end(user_id="user-1", session_id="s-1", now_ms=now())
    second = await store.end(user_id="user-1", session_id="s-1", now_ms=now())
    assert second == first


async def test_deleted_session_is_gone_with_its_history(store: SessionStore) -> None:
    made = await store.create(a_session())
    await run_turn(store, made, "hi", "hello")

    await store.delete(user_id="user-1", session_id="s-1", now_ms=now())

    with pytest.raises(SessionNotFound):
        await store.get(user_id="user-1", session_id="s-1", now_ms=now())
    await store.create(made)
    assert await all_turns(store, made) == []


async def test_deleting_an_unknown_session_is_not_found(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        await store.delete(user_id="user-1", session_id="nope", now_ms=now())


async def test_another_user_cannot_delete_a_session(store: SessionStore) -> None:
    await store.create(a_session(user_id="alice"))
    with pytest.raises(SessionNotFound):
        await store.delete(user_id="mallory", session_id="s-1", now_ms=now())
    assert await store.get(user_id="alice", session_id="s-1", now_ms=now())


# --- turns ---------------------------------------------------------------------------


async def test_begin_records_an_in_progress_turn_with_the_input(store: SessionStore) -> None:
    made = await store.create(a_session())

    start = await begin(store, made, "How's the weather in Shanghai?", request_id="r-1")

    assert start.turn.index == 1
    assert start.turn.status is TurnStatus.IN_PROGRESS
    assert start.turn.input == "How's the weather in Shanghai?"
    assert start.turn.request_id == "r-1"
    assert (start.session.total_turns, start.session.turn_count) == (1, 0)
    assert start.history == []


async def test_completing_a_turn_stores_reply_state_and_count_together(
    store: SessionStore,
) -> None:
    made = await store.create(a_session(state={"keep": 1, "drop": 2}))
    start = await begin(store, made)

    after = await complete(
        store,
        start,
        "Sunny, 22°C",
        delta=StateDelta(set={"city": "Shanghai"}, delete=frozenset({"drop"})),
    )

    assert after.state == {"keep": 1, "city": "Shanghai"}
    assert (after.turn_count, after.total_turns) == (1, 1)
    [turn] = await all_turns(store, made)
    assert (turn.status, turn.input, turn.output) == (TurnStatus.COMPLETED, "hello", "Sunny, 22°C")
    assert turn.complete_time_ms >= turn.create_time_ms


@pytest.mark.parametrize("status", [TurnStatus.FAILED, TurnStatus.CANCELLED])
async def test_a_turn_that_did_not_complete_keeps_the_input_and_no_reply(
    store: SessionStore, status: TurnStatus
) -> None:
    made = await store.create(a_session(state={"a": 1}))
    start = await begin(store, made, "my words")

    turn, after = await store.finish_turn(
        user_id="user-1",
        session_id="s-1",
        turn=start.turn,
        run_id="run-1",
        outcome=TurnOutcome(
            status, output="half a rep", error="boom", state_delta=StateDelta(set={"a": 2})
        ),
        now_ms=now(),
    )

    assert (turn.status, turn.input, turn.output, turn.error) == (status, "my words", "", "boom")
    assert (after.turn_count, after.total_turns, after.state) == (0, 1, {"a": 1})
    assert (await begin(store, made, run_id="run-2")).turn.index == start.turn.index + 1


async def test_history_holds_only_completed_turns_of_the_recent_window(
    store: SessionStore,
) -> None:
    made = await store.create(a_session())
    for i in range(4):
        await run_turn(store, made, f"q{i}", f"a{i}")
    failed = await begin(store, made, "lost")
    await fail(store, failed)

    start = await begin(store, made, "next", run_id="run-9", history_turns=3)

    assert [(t.input, t.output) for t in start.history] == [("q2", "a2"), ("q3", "a3")]


async def test_a_second_concurrent_turn_is_a_conflict(store: SessionStore) -> None:
    made = await store.create(a_session())
    await begin(store, made)
    with pytest.raises(TurnInProgress):
        await begin(store, made, run_id="run-2")


async def test_of_many_concurrent_begins_exactly_one_records_a_turn(store: SessionStore) -> None:
    made = await store.create(a_session())

    outcomes = await asyncio.gather(
        *(begin(store, made, f"attempt {i}", run_id=f"run-{i}") for i in range(20)),
        return_exceptions=True,
    )

    started = [o for o in outcomes if isinstance(o, TurnStart)]
    assert len(started) == 1
    assert all(isinstance(o, TurnInProgress) for o in outcomes if o not in started)
    assert [t.input for t in await all_turns(store, made)] == [started[0].turn.input]


async def test_a_turn_whose_lease_ran_out_is_failed_by_the_next_run(store: SessionStore) -> None:
    made = await store.create(a_session())
    t = now()
    await begin(store, made, "abandoned", at=t, lease_ms=1_000)

    start = await begin(store, made, "fresh", run_id="run-2", at=t + 1_000)

    assert start.turn.index == 2
    turns = await all_turns(store, made, at=t + 1_000)
    assert [(x.status, x.input) for x in turns] == [
        (TurnStatus.FAILED, "abandoned"),
        (TurnStatus.IN_PROGRESS, "fresh"),
    ]
    assert "lease" in turns[0].error


async def test_a_renewed_lease_keeps_the_turn_its_runs(store: SessionStore) -> None:
    made = await store.create(a_session())
    t = now()
    start = await begin(store, made, at=t, lease_ms=1_000)

    await renew(store, start, at=t + 900, lease_ms=1_000)

    with pytest.raises(TurnInProgress):
        await begin(store, made, run_id="run-2", at=t + 1_500)


async def test_a_lease_not_renewed_in_time_lets_the_next_run_take_over(
    store: SessionStore,
) -> None:
    made = await store.create(a_session())
    t = now()
    start = await begin(store, made, at=t, lease_ms=1_000)
    await renew(store, start, at=t + 900, lease_ms=1_000)

    taken = await begin(store, made, run_id="run-2", at=t + 1_900)

    assert taken.turn.index == 2


async def taken_over(store: SessionStore, t: int) -> TurnStart:
    """The start of a turn that run-1 began at ``t`` and run-2 took over when its lease ran out."""
    made = await store.create(a_session())
    stale = await begin(store, made, at=t, lease_ms=1_000)
    await begin(store, made, run_id="run-2", at=t + 1_000)
    return stale


async def test_renewing_a_lease_another_run_took_over_is_refused(store: SessionStore) -> None:
    t = now()
    stale = await taken_over(store, t)

    with pytest.raises(RunSuperseded):
        await renew(store, stale, at=t + 1_100, lease_ms=1_000)


async def test_renewing_the_lease_of_a_finished_turn_is_refused(store: SessionStore) -> None:
    made = await store.create(a_session())
    start = await begin(store, made)
    await complete(store, start)

    with pytest.raises(RunSuperseded):
        await renew(store, start, at=now(), lease_ms=1_000)


async def test_finishing_a_turn_the_run_no_longer_owns_is_refused(store: SessionStore) -> None:
    stale = await taken_over(store, now())

    with pytest.raises(RunSuperseded):
        await complete(store, stale, run_id="run-1")


async def test_finishing_a_turn_of_a_deleted_session_is_refused(store: SessionStore) -> None:
    made = await store.create(a_session())
    start = await begin(store, made)
    await store.delete(user_id="user-1", session_id="s-1", now_ms=now())

    with pytest.raises(RunSuperseded):
        await complete(store, start)


async def test_max_turns_counts_completed_turns_only(store: SessionStore) -> None:
    made = await store.create(a_session(max_turns=2))
    await run_turn(store, made, "1", "one")
    failed = await begin(store, made)
    await fail(store, failed)
    await run_turn(store, made, "2", "two")

    with pytest.raises(MaxTurnsReached) as raised:
        await begin(store, made)
    assert raised.value.metadata["max_turns"] == "2"


async def test_a_repeated_request_id_replays_the_completed_turn(store: SessionStore) -> None:
    made = await store.create(a_session())
    first = await begin(store, made, "hi", request_id="r-1")
    await complete(store, first, "hello")

    again = await begin(store, made, "hi", request_id="r-1", run_id="run-2")

    assert again.replayed
    assert (again.turn.index, again.turn.output) == (1, "hello")
    assert again.session.total_turns == 1


async def test_a_request_id_whose_turn_failed_runs_again(store: SessionStore) -> None:
    made = await store.create(a_session())
    first = await begin(store, made, "hi", request_id="r-1")
    await fail(store, first)

    again = await begin(store, made, "hi", request_id="r-1", run_id="run-2")

    assert not again.replayed
    assert again.turn.index == 2


async def test_list_turns_pages_oldest_or_newest_first(store: SessionStore) -> None:
    made = await store.create(a_session())
    for i in range(5):
        await run_turn(store, made, f"q{i}", f"a{i}")

    oldest = await turns_page(store, made, start_index=2, limit=2)
    newest = await turns_page(store, made, limit=2, newest_first=True)
    beyond = await turns_page(store, made, start_index=6, limit=2)

    assert [t.index for t in oldest.turns] == [2, 3]
    assert [t.index for t in newest.turns] == [5, 4]
    assert beyond.turns == []
    assert oldest.next_index == 4


async def test_list_turns_of_another_user_is_not_found(store: SessionStore) -> None:
    await store.create(a_session(user_id="alice"))
    with pytest.raises(SessionNotFound):
        await turns_page(store, a_session(user_id="mallory"), limit=1)


# --- import ----------------------------------------------------------------------------


def a_history(t: int) -> list[Turn]:
    """Four finished turns as an export holds them: two completed, one failed, one cancelled."""
    return [
        Turn(1, TurnStatus.COMPLETED, "q1", t - 9_000, "a1", t - 8_900, "r-1"),
        Turn(2, TurnStatus.FAILED, "q2", t - 8_000, "", t - 7_900, "r-2", "agent failed"),
        Turn(3, TurnStatus.CANCELLED, "q3", t - 7_000, "", t - 6_900, "", "cancelled"),
        Turn(4, TurnStatus.COMPLETED, 'q4 "ünï" 🌤\\', t - 6_000, "a4 ☀️\n", t - 5_900, "r-4"),
    ]


def an_imported_session(t: int, **overrides: Any) -> Session:
    fields: dict[str, Any] = {
        "now_ms": t,
        "state": {"city": "Shanghai", "n": [1, 2.5, None]},
        "labels": {"channel": "web"},
        "summary": "The user asked about the weather.",
        "turn_count": 2,
        "total_turns": 4,
    }
    fields.update(overrides)
    return a_session(**fields)


async def test_an_imported_session_reads_back_with_its_state_summary_status_and_counts(
    store: SessionStore,
) -> None:
    t = now()
    made = an_imported_session(t, status=SessionStatus.ENDED)

    stored = await store.import_session(made, a_history(t))
    got = await store.get(user_id="user-1", session_id="s-1", now_ms=now())

    assert stored == made
    assert got == made


async def test_imported_turns_list_back_exactly_as_given(store: SessionStore) -> None:
    t = now()
    made = await store.import_session(an_imported_session(t), a_history(t))

    assert await all_turns(store, made) == a_history(t)


async def test_the_request_id_of_an_imported_completed_turn_replays_it(
    store: SessionStore,
) -> None:
    t = now()
    made = await store.import_session(an_imported_session(t), a_history(t))

    again = await begin(store, made, "q1", request_id="r-1")

    assert again.replayed
    assert again.turn == a_history(t)[0]
    assert again.session.total_turns == 4


async def test_the_request_id_of_an_imported_failed_turn_runs_again(store: SessionStore) -> None:
    t = now()
    made = await store.import_session(an_imported_session(t), a_history(t))

    again = await begin(store, made, "q2", request_id="r-2")

    assert not again.replayed
    assert again.turn.index == 5


async def test_the_turn_after_an_import_is_n_plus_1_with_the_imported_history(
    store: SessionStore,
) -> None:
    t = now()
    made = await store.import_session(an_imported_session(t), a_history(t))

    start = await begin(store, made, "next")
    after = await complete(store, start)

    history = a_history(t)
    assert start.turn.index == 5
    assert start.history == [history[0], history[3]]
    assert (after.turn_count, after.total_turns) == (3, 5)


async def test_an_import_of_thousands_of_turns_is_stored_whole(store: SessionStore) -> None:
    t = now()
    n = 2_500  # more than one slice of arguments per Redis command
    turns = [
        Turn(i, TurnStatus.COMPLETED, f"q{i}", t - n + i, f"a{i}", t - n + i, f"r-{i}")
        for i in range(1, n + 1)
    ]
    made = await store.import_session(
        an_imported_session(t, state={}, turn_count=n, total_turns=n), turns
    )

    replayed = await begin(store, made, "q", request_id=f"r-{n}")

    assert await all_turns(store, made) == turns
    assert replayed.replayed and replayed.turn == turns[-1]


async def test_importing_over_a_taken_id_raises_already_exists_and_changes_nothing(
    store: SessionStore,
) -> None:
    t = now()
    existing = await store.create(a_session(now_ms=t, state={"mine": True}))
    before = await run_turn(store, existing, "hi", "hello")
    turns_before = await all_turns(store, existing)

    with pytest.raises(SessionAlreadyExists):
        await store.import_session(an_imported_session(t), a_history(t))

    assert await store.get(user_id="user-1", session_id="s-1", now_ms=now()) == before
    assert await all_turns(store, existing) == turns_before


async def test_ping_answers_when_the_store_is_up(store: SessionStore) -> None:
    await store.ping()


async def test_create_refuses_a_user_at_the_session_limit(store: SessionStore) -> None:
    for i in range(2):
        await store.create(a_session(session_id=f"s-{i}"), max_sessions_per_user=2)

    with pytest.raises(TooManySessions):
        await store.create(a_session(session_id="s-2"), max_sessions_per_user=2)
    await store.create(a_session(session_id="s-2", user_id="someone-else"), max_sessions_per_user=2)
    with pytest.raises(SessionNotFound):
        await store.get(user_id="user-1", session_id="s-2", now_ms=now())


async def test_expired_and_deleted_sessions_do_not_count_toward_the_limit(
    store: SessionStore,
) -> None:
    t = now()
    await store.create(a_session(session_id="brief", idle_timeout_ms=60_000, now_ms=t))
    await store.create(a_session(session_id="deleted", now_ms=t))
    await store.delete(user_id="user-1", session_id="deleted", now_ms=t)

    made = await store.create(
        a_session(session_id="new", now_ms=t + 60_000), max_sessions_per_user=1
    )

    assert made.session_id == "new"


async def test_a_create_retried_with_its_request_id_returns_the_session(
    store: SessionStore,
) -> None:
    first = await store.create(a_session(create_request_id="create-1", state={"a": 1}))

    again = await store.create(a_session(create_request_id="create-1", state={"b": 2}))

    assert again == first


async def test_a_taken_id_with_another_request_id_is_already_exists(store: SessionStore) -> None:
    await store.create(a_session(create_request_id="create-1"))
    with pytest.raises(SessionAlreadyExists):
        await store.create(a_session(create_request_id="create-2"))
    with pytest.raises(SessionAlreadyExists):
        await store.create(a_session())
