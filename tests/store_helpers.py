"""Sessions and turns made directly on a SessionStore, for the tests of the stores."""

from __future__ import annotations

import time
from typing import Any

from agent_sessions.model import (
    Session,
    SessionStatus,
    StateDelta,
    Turn,
    TurnOutcome,
    TurnPage,
    TurnStart,
    TurnStatus,
)
from agent_sessions.store.protocol import SessionStore

__all__ = [
    "HOUR_MS",
    "LEASE_MS",
    "USER",
    "a_session",
    "all_turns",
    "begin",
    "complete",
    "fail",
    "now",
    "renew",
    "run_turn",
    "turns_page",
]

HOUR_MS = 3_600_000
LEASE_MS = 60_000
USER = "user-1"


def now() -> int:
    # Real time, because Redis expires keys on its own clock; tests move past
    # expiry by passing a later now_ms, which every store honours.
    return int(time.time() * 1000)


def a_session(*, now_ms: int | None = None, **overrides: Any) -> Session:
    """An active session "s-1" of USER, made at ``now_ms`` (now), with ``overrides``."""
    t = now_ms or now()
    fields: dict[str, Any] = {
        "session_id": "s-1",
        "user_id": USER,
        "agent_id": "agent-1",
        "status": SessionStatus.ACTIVE,
        "create_time_ms": t,
        "update_time_ms": t,
        "last_activity_ms": t,
        "ttl_ms": 24 * HOUR_MS,
        "idle_timeout_ms": HOUR_MS // 2,
        "max_turns": 0,
        "turn_count": 0,
        "total_turns": 0,
    }
    fields.update(overrides)
    return Session(**fields)


async def begin(
    store: SessionStore,
    session: Session,
    text: str = "hello",
    *,
    run_id: str = "run-1",
    request_id: str = "",
    at: int | None = None,
    history_turns: int = 20,
    lease_ms: int = LEASE_MS,
) -> TurnStart:
    """Begins a turn of ``session`` (only its ids are read) as run ``run_id``."""
    return await store.begin_turn(
        user_id=session.user_id,
        session_id=session.session_id,
        text=text,
        request_id=request_id,
        run_id=run_id,
        lease_ms=lease_ms,
        history_turns=history_turns,
        now_ms=at or now(),
    )


async def _finish(
    store: SessionStore, start: TurnStart, outcome: TurnOutcome, run_id: str
) -> Session:
    _, after = await store.finish_turn(
        user_id=start.session.user_id,
        session_id=start.session.session_id,
        turn=start.turn,
        run_id=run_id,
        outcome=outcome,
        now_ms=now(),
    )
    return after


async def complete(
    store: SessionStore,
    start: TurnStart,
    output: str = "reply",
    *,
    run_id: str = "run-1",
    delta: StateDelta | None = None,
) -> Session:
    """Completes the begun turn with ``output`` and ``delta``; the session after it."""
    outcome = TurnOutcome(TurnStatus.COMPLETED, output=output, state_delta=delta or StateDelta())
    return await _finish(store, start, outcome, run_id)


async def fail(store: SessionStore, start: TurnStart, *, run_id: str = "run-1") -> Session:
    """Finishes the begun turn FAILED; the session after it."""
    return await _finish(store, start, TurnOutcome(TurnStatus.FAILED, error="x"), run_id)


async def run_turn(store: SessionStore, session: Session, text: str, output: str) -> Session:
    """One whole turn of ``session``: ``text`` in, ``output`` out."""
    return await complete(store, await begin(store, session, text), output)


async def renew(
    store: SessionStore, start: TurnStart, *, run_id: str = "run-1", at: int, lease_ms: int
) -> None:
    await store.renew_lease(
        user_id=start.session.user_id,
        session_id=start.session.session_id,
        index=start.turn.index,
        run_id=run_id,
        lease_ms=lease_ms,
        now_ms=at,
    )


async def turns_page(
    store: SessionStore,
    session: Session,
    *,
    start_index: int | None = None,
    limit: int,
    newest_first: bool = False,
    archived: bool = False,
    at: int | None = None,
) -> TurnPage:
    """A page of the turns of ``session``: its history, and its archive if asked."""
    return await store.list_turns(
        user_id=session.user_id,
        session_id=session.session_id,
        start_index=start_index,
        limit=limit,
        newest_first=newest_first,
        include_archived=archived,
        now_ms=at or now(),
    )


async def all_turns(
    store: SessionStore,
    session: Session,
    *,
    archived: bool = False,
    newest_first: bool = False,
    at: int | None = None,
) -> list[Turn]:
    """Every turn of ``session``, in one page."""
    page = await turns_page(
        store, session, limit=100_000, newest_first=newest_first, archived=archived, at=at
    )
    return page.turns
