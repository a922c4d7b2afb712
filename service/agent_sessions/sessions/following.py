"""Following a run through its session's event log, as ResumeRun, the caller of a
detached run and a retry that attaches to a running run do: from any replica, since the
log is the store's."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from agent_sessions.errors import EventsLost, RunNotCompleted, RunNotFound, SessionNotFound
from agent_sessions.model import Turn, TurnStatus
from agent_sessions.session_events import TERMINAL_KINDS, EventKind, SessionEvent
from agent_sessions.sessions.events import RunCompleted, RunDelta, RunEvent, RunItem, RunStarted
from agent_sessions.store import SessionStore
from agent_sessions.store.protocol import ABANDONED_TURN_ERROR

_RECENT_TURNS = 32
"""How far back a run named by its request id is looked for among the turns, once its
events are no longer held."""


class _Run:
    """Which events belong to the followed run: known by run id, request id or turn."""

    def __init__(self, run_id: str, request_id: str, turn_index: int) -> None:
        self.run_id = run_id
        self.request_id = request_id
        self.turn_index = turn_index

    def owns(self, event: SessionEvent) -> bool:
        starts_it = event.kind is EventKind.RUN_STARTED and event.request_id == self.request_id
        if self.request_id and starts_it:
            self.run_id, self.turn_index = event.run_id, event.turn_index
            return True
        if self.run_id:
            return event.run_id == self.run_id
        return self.turn_index > 0 and event.run_id != "" and event.turn_index == self.turn_index


async def follow_run(
    store: SessionStore,
    *,
    user_id: str,
    session_id: str,
    run_id: str = "",
    request_id: str = "",
    turn_index: int = 0,
    after: int,
    clock: Callable[[], int],
    running: bool = False,
    starts_at: int = 0,
) -> AsyncGenerator[RunEvent, None]:
    """The run's events after sequence number ``after``, then its completion; raises
    ``RunNotCompleted`` when it ends FAILED or CANCELLED. ``running``: the caller knows
    the run is in progress (a retry that attaches), so a run none of whose events are
    held is followed live rather than looked for among the turns. ``starts_at``: the
    sequence number of the run's start, when known (the log is read from there, not
    from the oldest event it holds)."""
    run = _Run(run_id, request_id, turn_index)
    seen = started = False
    trimmed_before = 0  # the oldest sequence held, when older ones were trimmed
    last = 0
    # The events held now first: the run may have ended already.
    async for event in store.watch(
        user_id=user_id,
        session_id=session_id,
        after=max(starts_at - 1, 0),
        clock=clock,
        live=False,
    ):
        last = max(last, event.sequence)
        if event.kind is EventKind.GAP:
            trimmed_before = event.first_sequence
            continue
        if not run.owns(event):
            continue
        if not seen:
            seen = True
            started = event.kind is EventKind.RUN_STARTED
            if not started and after + 1 < trimmed_before:
                raise EventsLost(session_id, after)  # the run's first events are gone
        if event.sequence > after:
            yield _run_event(event, session_id)
        if event.kind is EventKind.TURN_COMMITTED:
            return
    if not seen and not running:
        async for replayed in _replay(store, run, user_id, session_id, clock):
            yield replayed
        return
    if not seen and after + 1 < trimmed_before:
        raise EventsLost(session_id, after)

    async def abandoned() -> None:
        # A run whose server died leaves no commit to wait for: its lease runs out.
        session = await store.get(user_id=user_id, session_id=session_id, now_ms=clock())
        running = session.running
        if running is None or running.index != run.turn_index:
            return  # it committed meanwhile (its event is on its way) or is not begun yet
        if running.lease_until_ms < clock():
            raise RunNotCompleted(session_id, run.turn_index, "ABANDONED", ABANDONED_TURN_ERROR)

    async for event in store.watch(
        user_id=user_id, session_id=session_id, after=last, clock=clock, on_idle=abandoned
    ):
        if event.kind is EventKind.GAP:
            raise EventsLost(session_id, last)
        if event.kind in TERMINAL_KINDS:
            raise SessionNotFound(session_id)
        last = event.sequence
        if not run.owns(event):
            continue
        if event.sequence > after:
            yield _run_event(event, session_id)
        if event.kind is EventKind.TURN_COMMITTED:
            return


async def _replay(
    store: SessionStore, run: _Run, user_id: str, session_id: str, clock: Callable[[], int]
) -> AsyncGenerator[RunEvent, None]:
    """A run whose events are gone, from its stored turn: as Run replays a completed
    turn of the same request id."""
    if not run.request_id:
        raise RunNotFound(session_id, run.run_id)
    page = await store.list_turns(
        user_id=user_id,
        session_id=session_id,
        start_index=None,
        limit=_RECENT_TURNS,
        newest_first=True,
        include_archived=False,
        now_ms=clock(),
    )
    turn = next((t for t in page.turns if t.request_id == run.request_id), None)
    if turn is None or turn.status is TurnStatus.IN_PROGRESS:
        raise RunNotFound(session_id, run.request_id)
    _check_completed(turn, session_id)
    session = await store.get(user_id=user_id, session_id=session_id, now_ms=clock())
    yield RunStarted(turn.index, replayed=True)
    if turn.output:
        yield RunDelta(turn.output)
    yield RunCompleted(turn, session)


def _run_event(event: SessionEvent, session_id: str) -> RunEvent:
    kind = event.kind
    if kind is EventKind.RUN_STARTED:
        return RunStarted(
            event.turn_index, replayed=False, run_id=event.run_id, sequence=event.sequence
        )
    if kind is EventKind.DELTA:
        return RunDelta(event.text, sequence=event.sequence)
    if kind is EventKind.ITEM and event.item is not None:
        return RunItem(event.item, sequence=event.sequence)
    if kind is EventKind.TURN_COMMITTED and event.turn is not None and event.session is not None:
        _check_completed(event.turn, session_id)
        return RunCompleted(event.turn, event.session, sequence=event.sequence)
    raise AssertionError(f"a run's log holds no {kind.name} event")


def _check_completed(turn: Turn, session_id: str) -> None:
    if turn.status is not TurnStatus.COMPLETED:
        raise RunNotCompleted(session_id, turn.index, turn.status.name, turn.error)
