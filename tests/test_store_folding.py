"""Folding turns into the summary: what every SessionStore does, on memory and Redis."""

from __future__ import annotations

from typing import Any

import pytest

from agent_sessions.errors import FoldConflict, SessionNotFound
from agent_sessions.model import Fold, Session, Turn, TurnStatus, text_bytes
from agent_sessions.store.protocol import SessionStore
from tests.store_helpers import a_session, all_turns, begin, complete, now, run_turn, turns_page


async def with_turns(store: SessionStore, count: int, **overrides: Any) -> Session:
    session = await store.create(a_session(**overrides))
    for i in range(1, count + 1):
        session = await run_turn(store, session, f"question {i}", f"answer {i}")
    return session


async def fold_through(
    store: SessionStore,
    session: Session,
    last: int,
    *,
    archive: bool = False,
    summary: str = "the summary",
) -> Session:
    turns = [t for t in await all_turns(store, session) if t.index <= last]
    fold = Fold(
        first_index=session.folded_turns + 1,
        last_index=last,
        summary=summary,
        folded_bytes=sum(text_bytes(t) for t in turns),
        request_ids=tuple(t.request_id for t in turns if t.request_id),
        archive=archive,
        create_time_ms=session.create_time_ms,
    )
    return await store.fold(
        user_id=session.user_id, session_id=session.session_id, fold=fold, now_ms=now()
    )


async def test_folding_removes_the_oldest_turns_and_keeps_the_rest_identical(
    store: SessionStore,
) -> None:
    session = await with_turns(store, 5)
    before = await all_turns(store, session)

    after = await fold_through(store, session, 3, summary="three turns about weather")

    assert await all_turns(store, session) == before[3:]
    assert (after.folded_turns, after.summary) == (3, "three turns about weather")
    assert (after.total_turns, after.turn_count) == (5, 5)


async def test_history_bytes_count_the_inputs_and_outputs_left_in_the_history(
    store: SessionStore,
) -> None:
    session = await with_turns(store, 4)
    assert session.history_bytes == sum(text_bytes(t) for t in await all_turns(store, session))

    after = await fold_through(store, session, 2)

    assert after.history_bytes == sum(text_bytes(t) for t in await all_turns(store, session))


async def test_turns_after_a_fold_take_the_next_index(store: SessionStore) -> None:
    session = await fold_through(store, await with_turns(store, 3), 3)

    start = await begin(store, session, "and now?")
    await complete(store, start)

    assert start.turn.index == 4
    assert [t.index for t in await all_turns(store, session)] == [4]


async def test_a_fold_planned_before_another_fold_is_refused(store: SessionStore) -> None:
    session = await with_turns(store, 4)
    await fold_through(store, session, 2)

    with pytest.raises(FoldConflict):
        await fold_through(store, session, 3)  # still planned from folded_turns=0


async def test_the_running_turn_cannot_be_folded(store: SessionStore) -> None:
    session = await with_turns(store, 2)
    await begin(store, session, "running")

    with pytest.raises(FoldConflict):
        await fold_through(store, session, 3)


async def test_a_turn_started_during_a_fold_survives_it(store: SessionStore) -> None:
    session = await with_turns(store, 3)
    start = await begin(store, session, "while compressing")  # between read and fold

    await fold_through(store, session, 3)
    await complete(store, start, "still here")

    [turn] = await all_turns(store, session)
    assert (turn.index, turn.input, turn.output) == (4, "while compressing", "still here")


async def test_a_fold_planned_on_a_replaced_session_is_refused(store: SessionStore) -> None:
    session = await with_turns(store, 2)
    await store.delete(user_id="user-1", session_id="s-1", now_ms=now())
    await with_turns(store, 2, now_ms=session.create_time_ms + 5)

    with pytest.raises(FoldConflict):
        await fold_through(store, session, 1)


async def test_folding_an_unknown_session_is_not_found(store: SessionStore) -> None:
    fold = Fold(1, 1, "the summary", 0, (), archive=False, create_time_ms=now())
    with pytest.raises(SessionNotFound):
        await store.fold(user_id="user-1", session_id="s-1", fold=fold, now_ms=now())


async def test_archived_turns_list_with_the_history_only_when_asked(store: SessionStore) -> None:
    session = await with_turns(store, 4)
    everything = await all_turns(store, session)

    await fold_through(store, session, 2, archive=True)

    assert [t.index for t in await all_turns(store, session)] == [3, 4]
    assert await all_turns(store, session, archived=True) == everything
    assert await all_turns(store, session, archived=True, newest_first=True) == everything[::-1]


async def test_archived_turns_page_across_the_archive_and_the_history(
    store: SessionStore,
) -> None:
    session = await with_turns(store, 5)
    await fold_through(store, session, 3, archive=True)
    seen: list[int] = []
    start: int | None = None
    while True:
        page = await turns_page(
            store, session, start_index=start, limit=2, newest_first=True, archived=True
        )
        seen += [t.index for t in page.turns]
        if page.next_index is None:
            break
        start = page.next_index

    assert seen == [5, 4, 3, 2, 1]


async def test_a_request_id_of_an_archived_turn_still_replays(store: SessionStore) -> None:
    session = await store.create(a_session())
    start = await begin(store, session, "once", request_id="req-1")
    await complete(store, start, "done")
    session = await fold_through(store, await run_turn(store, session, "b", "b"), 1, archive=True)

    again = await begin(store, session, "once", request_id="req-1", run_id="run-2")

    assert again.replayed
    assert (again.turn.index, again.turn.output) == (1, "done")


async def test_a_request_id_of_a_turn_folded_without_archive_is_forgotten(
    store: SessionStore,
) -> None:
    session = await store.create(a_session())
    start = await begin(store, session, "once", request_id="req-1")
    await complete(store, start, "done")
    session = await fold_through(store, session, 1)

    again = await begin(store, session, "once", request_id="req-1", run_id="run-2")

    assert not again.replayed
    assert again.turn.index == 2


async def test_an_import_may_start_after_folded_turns(store: SessionStore) -> None:
    turns = [
        Turn(index=i, status=TurnStatus.COMPLETED, input=f"q{i}", create_time_ms=now(), output="a")
        for i in (8, 9)
    ]
    session = a_session(
        folded_turns=7,
        total_turns=9,
        turn_count=9,
        summary="seven turns before",
        history_bytes=sum(text_bytes(t) for t in turns),
    )

    imported = await store.import_session(session, turns)
    start = await begin(store, imported, "next")

    assert [t.index for t in await all_turns(store, imported)] == [8, 9, 10]
    assert (imported.folded_turns, start.turn.index) == (7, 10)
