"""The embedded store: sessions in this process's memory, lost when it stops.

No method awaits between reading and writing, so each one is atomic with respect
to other asyncio tasks without a lock. State values are kept JSON-encoded, as in
Redis, so every read hands out fresh copies and nothing a caller mutates leaks in.

Each session has an event log (:mod:`agent_sessions.session_events`): a deque of the
newest events, appended in the same synchronous step as the write each tells of. A
watcher reads it by sequence number and waits on a future that the next append (or the
log's removal) completes, so a writer never waits for a watcher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from agent_sessions import scopes
from agent_sessions.errors import (
    EtagMismatch,
    ExternalAgentSession,
    FoldConflict,
    MaxTurnsReached,
    RunSuperseded,
    SequenceMismatch,
    SessionAlreadyExists,
    SessionEnded,
    SessionNotFound,
    TooManySessions,
    TurnInProgress,
)
from agent_sessions.model import (
    Fold,
    Item,
    ItemPage,
    ItemsWrite,
    ItemsWritten,
    RunningTurn,
    Session,
    SessionCursor,
    SessionPage,
    SessionPatch,
    SessionStatus,
    StateDelta,
    Turn,
    TurnOutcome,
    TurnPage,
    TurnStart,
    TurnStatus,
    text_bytes,
)
from agent_sessions.session_events import (
    DEFAULT_EVENT_WINDOW,
    EventKind,
    EventWindow,
    SessionEvent,
)
from agent_sessions.store.protocol import ABANDONED_TURN_ERROR

_SWEEP_INTERVAL_MS = 10_000

_RUN_KINDS = frozenset({EventKind.DELTA, EventKind.ITEM})
"""The kinds of event a run publishes (and hands to finish_turn as pending)."""


@dataclass(slots=True)
class _Record:
    session: Session  # its ``state`` is always empty: the state lives in ``state_json``
    state_json: dict[str, str]
    turns: list[Turn] = field(default_factory=list)  # the history: folded turns are gone
    turn_by_request: dict[str, int] = field(default_factory=dict)
    archive: dict[int, Turn] = field(default_factory=dict)
    items: dict[int, Item] = field(default_factory=dict)  # by sequence, oldest first
    item_by_id: dict[str, int] = field(default_factory=dict)
    archived_items: dict[int, Item] = field(default_factory=dict)  # of folded turns
    # turn index -> the sequences a write answered with, when some were held already
    answers: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def turn(self, index: int) -> Turn | None:
        folded = self.session.folded_turns
        if index > folded:
            return self.turns[index - folded - 1]
        return self.archive.get(index)

    def replace(self, turn: Turn) -> None:
        self.turns[turn.index - self.session.folded_turns - 1] = turn

    @property
    def key(self) -> tuple[str, str]:
        return self.session.user_id, self.session.session_id


class _Log:
    """A session's event log: the newest events of a window, and who waits for more."""

    __slots__ = ("deleted_until_ms", "dropped", "events", "last", "waiters")

    def __init__(self, max_events: int) -> None:
        self.events: deque[SessionEvent] = deque(maxlen=max_events)
        self.last = 0
        """The sequence number of the last event appended (held or trimmed since)."""
        self.deleted_until_ms: int | None = None
        """Set when the session was deleted: the log is held until then."""
        self.dropped = False
        """The store let go of the log (its session expired, or its deletion's grace
        ran out): nothing more will be appended to it."""
        self.waiters: set[asyncio.Future[None]] = set()

    def wake(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
        self.waiters.clear()

    def read(self, cursor: int, now_ms: int) -> SessionEvent | None:
        """The event after sequence number ``cursor``, a GAP when that is gone (or the
        log started anew below it), None when there is none yet."""
        events = self.events
        first = events[0].sequence if events else 0
        if self.last < cursor or (self.last > cursor and (not events or first > cursor + 1)):
            return SessionEvent(
                kind=EventKind.GAP,
                sequence=first - 1 if events else self.last,
                time_ms=now_ms,
                first_sequence=first,
            )
        if cursor == self.last:
            return None
        return events[cursor + 1 - first]


class MemorySessionStore:
    """A :class:`~agent_sessions.store.SessionStore` in a dict, expiry included."""

    def __init__(self, *, event_window: EventWindow = DEFAULT_EVENT_WINDOW) -> None:
        self._window = event_window
        self._logs: dict[tuple[str, str], _Log] = {}
        self._watching: dict[tuple[str, str], int] = {}
        """Live watches by session: its runs then publish their deltas at once."""
        self._records: dict[tuple[str, str], _Record] = {}
        self._by_user: dict[str, set[str]] = {}
        self._last_sweep_ms = 0
        self._namespaces: dict[str, MemorySessionStore] = {}
        self._apps: dict[str, MemorySessionStore] = {}
        # The shared scopes of state, key -> JSON text as for a session's.
        self._user_state: dict[str, dict[str, str]] = {}
        self._app_state: dict[str, str] = {}

    async def create(self, session: Session, *, max_sessions_per_user: int = 0) -> Session:
        return self._insert(session, (), max_sessions_per_user)

    async def import_session(
        self, session: Session, turns: Sequence[Turn], *, max_sessions_per_user: int = 0
    ) -> Session:
        return self._insert(session, turns, max_sessions_per_user)

    def _insert(self, session: Session, turns: Sequence[Turn], max_sessions: int) -> Session:
        now = session.create_time_ms
        self._sweep(now)
        key = (session.user_id, session.session_id)
        existing = self._find(key, now)
        if existing is not None:
            retried = existing.session.create_request_id
            if retried and retried == session.create_request_id:
                return self._view(existing)  # a retry of the create that made it
            raise SessionAlreadyExists(session.session_id)
        if max_sessions:
            live = sum(
                self._find((session.user_id, other), now) is not None
                for other in list(self._by_user.get(session.user_id, ()))
            )
            if live >= max_sessions:
                raise TooManySessions(session.user_id, max_sessions)
        items = [item for turn in turns for item in turn.items]
        record = _Record(
            # Copies: the caller keeps its dicts, and what is stored changes only here.
            session=dataclasses.replace(session, state={}, labels=dict(session.labels)),
            state_json={},
            turns=[dataclasses.replace(t, items=()) for t in turns],
            turn_by_request={t.request_id: t.index for t in turns if t.request_id},
            items={item.sequence: item for item in items},
            item_by_id={item.item_id: item.sequence for item in items if item.item_id},
        )
        self._records[key] = record
        self._by_user.setdefault(session.user_id, set()).add(session.session_id)
        self._apply(record, StateDelta(set=session.state))
        return self._view(record)

    async def get(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        return self._view(self._live(user_id, session_id, now_ms))

    async def list(
        self,
        *,
        user_id: str,
        agent_id: str | None,
        page_size: int,
        after: SessionCursor | None,
        now_ms: int,
    ) -> SessionPage:
        live = [
            record.session
            for session_id in list(self._by_user.get(user_id, ()))
            if (record := self._find((user_id, session_id), now_ms)) is not None
        ]
        live.sort(key=lambda s: (s.last_activity_ms, s.session_id), reverse=True)
        if after is not None:
            bound = (after.last_activity_ms, after.session_id)
            live = [s for s in live if (s.last_activity_ms, s.session_id) < bound]
        if agent_id:
            live = [s for s in live if s.agent_id == agent_id]
        page = live[:page_size]
        next_cursor = None
        if page and len(live) > page_size:
            last = page[-1]
            next_cursor = SessionCursor(last.last_activity_ms, last.session_id)
        records = [self._records[(user_id, s.session_id)] for s in page]
        return SessionPage([self._view(r) for r in records], next_cursor)

    async def update(
        self,
        *,
        user_id: str,
        session_id: str,
        patch: SessionPatch,
        expected_etag: str | None,
        now_ms: int,
    ) -> Session:
        record = self._live(user_id, session_id, now_ms)
        session = record.session
        if expected_etag is not None and expected_etag != session.etag:
            raise EtagMismatch(session_id, expected_etag, session.etag)
        if patch.state is not None:
            # The session's keys are replaced; the user's and the app's named are set.
            record.state_json = {}
        self._apply(record, patch.state_delta)
        changed = dataclasses.replace(
            session,
            labels=session.labels if patch.labels is None else dict(patch.labels),
            ttl_ms=session.ttl_ms if patch.ttl_ms is None else patch.ttl_ms,
            idle_timeout_ms=(
                session.idle_timeout_ms if patch.idle_timeout_ms is None else patch.idle_timeout_ms
            ),
            max_turns=session.max_turns if patch.max_turns is None else patch.max_turns,
        )
        record.session = self._touched(changed, now_ms)
        self._log_session(record, EventKind.SESSION_UPDATED, now_ms)
        return self._view(record)

    async def end(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        record = self._live(user_id, session_id, now_ms)
        if record.session.status is not SessionStatus.ENDED:
            record.session = dataclasses.replace(
                record.session,
                status=SessionStatus.ENDED,
                update_time_ms=now_ms,
                version=record.session.version + 1,
            )
            self._log_session(record, EventKind.ENDED, now_ms)
        return self._view(record)

    async def delete(self, *, user_id: str, session_id: str, now_ms: int) -> None:
        self._live(user_id, session_id, now_ms)
        key = (user_id, session_id)
        log = self._log(key, now_ms)
        self._append(log, now_ms, [SessionEvent(kind=EventKind.DELETED)])
        # The log stays a while, so that its watchers see the session go.
        log.deleted_until_ms = now_ms + self._window.deleted_grace_ms
        self._forget(key, keep_log=True)

    async def begin_turn(
        self,
        *,
        user_id: str,
        session_id: str,
        text: str,
        request_id: str,
        run_id: str,
        lease_ms: int,
        history_turns: int,
        now_ms: int,
        history_items: int = 0,
    ) -> TurnStart:
        self._sweep(now_ms)
        record = self._live(user_id, session_id, now_ms)
        session = record.session
        if request_id and (earlier := record.turn_by_request.get(request_id)) is not None:
            turn = record.turn(earlier)
            if turn is not None and turn.status is TurnStatus.COMPLETED:
                return TurnStart(self._view(record), turn, [], replayed=True)
        if session.external_agent:
            raise ExternalAgentSession(session_id)
        if session.status is SessionStatus.ENDED:
            raise SessionEnded(session_id)
        if session.max_turns and session.turn_count >= session.max_turns:
            raise MaxTurnsReached(session_id, session.max_turns)
        running = session.running
        if (
            request_id
            and running is not None
            and running.lease_until_ms > now_ms
            and record.turn_by_request.get(request_id) == running.index
        ):
            # A retry of the run that is still going: the caller may attach to it.
            raise TurnInProgress(session_id, running.index, run_id=running.run_id)
        self._free_abandoned(record, now_ms)
        window = record.turns[-history_turns:] if history_turns > 0 else []
        history = [t for t in window if t.status is TurnStatus.COMPLETED]
        turn = Turn(
            index=session.total_turns + 1,
            status=TurnStatus.IN_PROGRESS,
            input=text,
            create_time_ms=now_ms,
            request_id=request_id,
        )
        record.turns.append(turn)
        if request_id:
            record.turn_by_request[request_id] = turn.index
        record.session = self._touched(
            dataclasses.replace(
                session,
                total_turns=turn.index,
                running=RunningTurn(turn.index, run_id, now_ms + lease_ms),
                history_bytes=session.history_bytes + text_bytes(turn),
            ),
            now_ms,
        )
        items = list(record.items.values())[-history_items:] if history_items > 0 else []
        started = SessionEvent(
            kind=EventKind.RUN_STARTED,
            run_id=run_id,
            turn_index=turn.index,
            request_id=request_id,
        )
        sequence = self._append(self._log(record.key, now_ms), now_ms, [started])
        return TurnStart(
            self._view(record),
            turn,
            history,
            history_items=items,
            event_sequence=sequence,
            watched=record.key in self._watching,
        )

    async def renew_lease(
        self, *, user_id: str, session_id: str, index: int, run_id: str, lease_ms: int, now_ms: int
    ) -> None:
        record = self._find((user_id, session_id), now_ms)
        running = record.session.running if record is not None else None
        if record is None or running is None or (running.index, running.run_id) != (index, run_id):
            raise RunSuperseded(session_id, index)
        record.session = dataclasses.replace(
            record.session, running=dataclasses.replace(running, lease_until_ms=now_ms + lease_ms)
        )

    async def finish_turn(
        self,
        *,
        user_id: str,
        session_id: str,
        turn: Turn,
        run_id: str,
        outcome: TurnOutcome,
        now_ms: int,
        pending: Sequence[SessionEvent] = (),
    ) -> tuple[Turn, Session]:
        index = turn.index
        events = _run_events(pending, run_id, index)
        record = self._owned(user_id, session_id, index, run_id, now_ms)
        completed = outcome.status is TurnStatus.COMPLETED
        finished = dataclasses.replace(
            record.turns[-1],
            status=outcome.status,
            output=outcome.output if completed else "",
            error=outcome.error,
            complete_time_ms=now_ms,
            usage=outcome.usage,
        )
        last_item = record.session.last_item_sequence
        if completed and outcome.items:
            if outcome.items[0].sequence != last_item + 1:
                raise RunSuperseded(session_id, index)  # items written meanwhile: not ours
            record.items.update((item.sequence, item) for item in outcome.items)
            last_item = outcome.items[-1].sequence
            finished = dataclasses.replace(
                finished,
                first_item_sequence=outcome.items[0].sequence,
                last_item_sequence=last_item,
                items=outcome.items,
            )
        record.replace(dataclasses.replace(finished, items=()))
        if completed:
            self._apply(record, outcome.state_delta)
        record.session = self._touched(
            dataclasses.replace(
                record.session,
                running=None,
                last_item_sequence=last_item,
                turn_count=record.session.turn_count + (1 if completed else 0),
                history_bytes=record.session.history_bytes + len(finished.output.encode()),
            ),
            now_ms,
        )
        committed = SessionEvent(
            kind=EventKind.TURN_COMMITTED,
            run_id=run_id,
            turn_index=index,
            turn=finished,
            session=self._logged_view(record),
        )
        self._append(self._log(record.key, now_ms), now_ms, [*events, committed])
        return finished, self._view(record)

    async def publish(
        self,
        *,
        user_id: str,
        session_id: str,
        run_id: str,
        turn_index: int,
        events: Sequence[SessionEvent],
        now_ms: int,
    ) -> bool:
        logged = _run_events(events, run_id, turn_index)
        record = self._owned(user_id, session_id, turn_index, run_id, now_ms)
        if logged:
            self._append(self._log(record.key, now_ms), now_ms, logged)
        return record.key in self._watching

    async def watch(
        self,
        *,
        user_id: str,
        session_id: str,
        after: int | None,
        clock: Callable[[], int],
        live: bool = True,
        on_idle: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[SessionEvent]:
        key = (user_id, session_id)
        now_ms = clock()
        record = self._find(key, now_ms)
        if record is None:
            raise SessionNotFound(session_id)
        log = self._log(key, now_ms, writing=False)
        cursor = log.last if after is None else after
        held_until = log.last  # without live, the end
        idle_s = self._window.idle_check_ms / 1000
        loop = asyncio.get_running_loop()
        if live:
            self._watching[key] = self._watching.get(key, 0) + 1
        try:
            while True:
                if not live and held_until <= cursor <= log.last:  # (above last: a GAP first)
                    return
                event = log.read(cursor, clock())
                if event is not None:
                    cursor = event.sequence
                    yield event
                    if event.kind is EventKind.DELETED:
                        return
                    continue
                if not log.dropped:
                    waiter: asyncio.Future[None] = loop.create_future()
                    log.waiters.add(waiter)
                    try:
                        await asyncio.wait((waiter,), timeout=idle_s)
                    finally:
                        log.waiters.discard(waiter)
                        waiter.cancel()
                    if log.last > cursor:
                        continue
                # Nothing new for a while (or the log was let go): is the session still here?
                now_ms = clock()
                if self._find(key, now_ms) is not record:
                    expired = SessionEvent(EventKind.EXPIRED, sequence=log.last + 1, time_ms=now_ms)
                    yield expired
                    return
                if on_idle is not None:
                    await on_idle()
                if self._logs.get(key) is not log:
                    # The same session's log was let go (the grace of a deletion before it
                    # was made again ran out): read on in its new one, from a GAP.
                    log = self._log(key, now_ms, writing=False)
        finally:
            if live:
                self._stop_watching(key)

    def _stop_watching(self, key: tuple[str, str]) -> None:
        left = self._watching[key] - 1
        if left:
            self._watching[key] = left
        else:
            del self._watching[key]

    async def list_turns(
        self,
        *,
        user_id: str,
        session_id: str,
        start_index: int | None,
        limit: int,
        newest_first: bool,
        include_archived: bool,
        now_ms: int,
    ) -> TurnPage:
        record = self._live(user_id, session_id, now_ms)
        turns = list(record.turns)
        if include_archived:
            turns = [record.archive[i] for i in sorted(record.archive)] + turns
        if newest_first:
            turns.reverse()
            if start_index is not None:
                turns = [t for t in turns if t.index <= start_index]
        elif start_index is not None:
            turns = [t for t in turns if t.index >= start_index]
        page = turns[: max(limit, 0)]
        following = turns[len(page)].index if len(turns) > len(page) else None
        return TurnPage(page, following)

    async def write_items(
        self, *, user_id: str, session_id: str, write: ItemsWrite, now_ms: int
    ) -> ItemsWritten:
        record = self._live(user_id, session_id, now_ms)
        if write.request_id and (earlier := record.turn_by_request.get(write.request_id)):
            turn = record.turn(earlier)
            if turn is not None and turn.first_item_sequence:
                answered = record.answers.get(earlier) or range(
                    turn.first_item_sequence, turn.last_item_sequence + 1
                )
                replayed = [record.items[s] for s in answered if s in record.items]
                return ItemsWritten(replayed, self._view(record), replayed=True)
        # Every check before the first change: a refused write leaves nothing behind.
        session = self._check_writable(record, now_ms)
        if session.max_turns and session.turn_count >= session.max_turns:
            raise MaxTurnsReached(session_id, session.max_turns)
        newest = next(reversed(record.items), 0)
        if write.expected_last_sequence is not None and write.expected_last_sequence != newest:
            raise SequenceMismatch(session_id, write.expected_last_sequence, newest)
        if write.expected_etag is not None and write.expected_etag != session.etag:
            raise EtagMismatch(session_id, write.expected_etag, session.etag)
        self._free_abandoned(record, now_ms)
        session = record.session
        if write.replace_after is not None:
            for sequence in [s for s in record.items if s > write.replace_after]:
                self._drop_item(record, sequence)
        first = last = session.last_item_sequence
        first += 1
        index = session.total_turns + 1
        stored: list[Item] = []
        held = False
        for item in write.items:
            existing = record.item_by_id.get(item.item_id) if item.item_id else None
            if existing is not None:
                stored.append(record.items[existing])
                held = True
                continue
            last += 1
            new = dataclasses.replace(item, sequence=last, turn_index=index, create_time_ms=now_ms)
            record.items[last] = new
            if new.item_id:
                record.item_by_id[new.item_id] = last
            stored.append(new)
        if held:  # a replay answers with the held items too, in their places
            record.answers[index] = tuple(item.sequence for item in stored)
        # A turn of written items keeps its range even when it stored none (last < first),
        # so that a retry of it is recognised.
        turn = Turn(
            index=index,
            status=TurnStatus.COMPLETED,
            input=write.input,
            output=write.output,
            create_time_ms=now_ms,
            complete_time_ms=now_ms,
            request_id=write.request_id,
            first_item_sequence=first,
            last_item_sequence=last,
        )
        record.turns.append(turn)
        if write.request_id:
            record.turn_by_request[write.request_id] = index
        self._apply(record, write.state_delta)
        record.session = self._touched(
            dataclasses.replace(
                session,
                total_turns=index,
                turn_count=session.turn_count + 1,
                last_item_sequence=last,
                history_bytes=session.history_bytes + text_bytes(turn),
            ),
            now_ms,
        )
        committed = SessionEvent(
            kind=EventKind.TURN_COMMITTED,
            turn_index=index,
            turn=dataclasses.replace(turn, items=tuple(stored)),
            session=self._logged_view(record),
        )
        self._append(self._log(record.key, now_ms), now_ms, [committed])
        return ItemsWritten(stored, self._view(record))

    async def list_items(
        self,
        *,
        user_id: str,
        session_id: str,
        after: int,
        before: int | None,
        limit: int,
        newest_first: bool,
        now_ms: int,
        include_archived: bool = False,
    ) -> ItemPage:
        record = self._live(user_id, session_id, now_ms)
        kept = [*record.archived_items.values(), *record.items.values()]
        chosen = [
            item
            for item in (kept if include_archived else record.items.values())
            if item.sequence > after and (before is None or item.sequence < before)
        ]
        if newest_first:
            chosen.reverse()
        return ItemPage(chosen[: max(limit, 0)], len(chosen) > limit)

    async def pop_item(
        self, *, user_id: str, session_id: str, now_ms: int
    ) -> tuple[Item | None, Session]:
        record = self._live(user_id, session_id, now_ms)
        self._check_writable(record, now_ms)
        self._free_abandoned(record, now_ms)
        session = record.session
        if not record.items:
            return None, self._view(record)
        newest = self._drop_item(record, next(reversed(record.items)))
        record.session = self._touched(session, now_ms)
        self._log_session(record, EventKind.SESSION_UPDATED, now_ms)
        return newest, self._view(record)

    async def clear_items(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        record = self._live(user_id, session_id, now_ms)
        self._check_writable(record, now_ms)
        self._free_abandoned(record, now_ms)
        session = record.session
        record.items.clear()
        record.answers.clear()
        record.item_by_id.clear()
        record.turns.clear()
        record.turn_by_request = {
            request_id: index
            for request_id, index in record.turn_by_request.items()
            if index in record.archive
        }
        record.session = self._touched(
            dataclasses.replace(
                session, summary="", folded_turns=session.total_turns, history_bytes=0
            ),
            now_ms,
        )
        self._log_session(record, EventKind.SESSION_UPDATED, now_ms)
        return self._view(record)

    @staticmethod
    def _check_writable(record: _Record, now_ms: int) -> Session:
        """The session, if items may be written to it now (changing nothing)."""
        session = record.session
        if session.status is SessionStatus.ENDED:
            raise SessionEnded(session.session_id)
        running = session.running
        if running is not None and running.lease_until_ms > now_ms:
            raise TurnInProgress(session.session_id, running.index)
        return session

    @staticmethod
    def _free_abandoned(record: _Record, now_ms: int) -> None:
        """Fails the running turn if its run's lease ran out; refuses if it still runs."""
        running = record.session.running
        if running is None:
            return
        if running.lease_until_ms > now_ms:
            raise TurnInProgress(record.session.session_id, running.index)
        abandoned = record.turns[-1]  # at most one turn runs: the last one
        record.replace(
            dataclasses.replace(
                abandoned,
                status=TurnStatus.FAILED,
                error=ABANDONED_TURN_ERROR,
                complete_time_ms=now_ms,
            )
        )
        record.session = dataclasses.replace(record.session, running=None)

    @staticmethod
    def _drop_item(record: _Record, sequence: int) -> Item:
        item = record.items.pop(sequence)
        if item.item_id:
            record.item_by_id.pop(item.item_id, None)
        return item

    def _apply(self, record: _Record, delta: StateDelta) -> None:
        for key in delta.delete:
            scope, field = self._scope(record, key)
            scope.pop(field, None)
        for key, value in delta.set.items():
            scope, field = self._scope(record, key)
            scope[field] = json.dumps(value)

    def _scope(self, record: _Record, key: str) -> tuple[dict[str, str], str]:
        """The state that ``key`` names, and its field there."""
        if key.startswith(scopes.USER_PREFIX):
            user_state = self._user_state.setdefault(record.session.user_id, {})
            return user_state, key.removeprefix(scopes.USER_PREFIX)
        if key.startswith(scopes.APP_PREFIX):
            return self._app_state, key.removeprefix(scopes.APP_PREFIX)
        return record.state_json, key

    async def fold(self, *, user_id: str, session_id: str, fold: Fold, now_ms: int) -> Session:
        record = self._live(user_id, session_id, now_ms)
        session = record.session
        running = session.running.index if session.running else session.total_turns + 1
        if (
            session.create_time_ms != fold.create_time_ms
            or session.folded_turns + 1 != fold.first_index
            or not fold.first_index <= fold.last_index < running
        ):
            raise FoldConflict(session_id)
        count = fold.last_index - session.folded_turns
        folded, record.turns = record.turns[:count], record.turns[count:]
        for sequence in [s for s in record.items if s <= fold.items_through]:
            folded_item = self._drop_item(record, sequence)
            if fold.archive:
                record.archived_items[sequence] = folded_item
        if fold.archive:
            record.archive.update((t.index, t) for t in folded)
        else:
            for request_id in fold.request_ids:
                if record.turn_by_request.get(request_id, fold.last_index + 1) <= fold.last_index:
                    del record.turn_by_request[request_id]
        record.session = dataclasses.replace(
            session,
            summary=fold.summary,
            folded_turns=fold.last_index,
            history_bytes=session.history_bytes - fold.folded_bytes,
            update_time_ms=now_ms,
            version=session.version + 1,
        )
        self._log_session(record, EventKind.COMPRESSED, now_ms)
        return self._view(record)

    def namespace(self, name: str) -> MemorySessionStore:
        store = self._namespaces.get(name)
        if store is None:
            store = self._namespaces[name] = MemorySessionStore(event_window=self._window)
        return store

    def app(self, name: str) -> MemorySessionStore:
        if not name:
            return self
        store = self._apps.get(name)
        if store is None:
            store = self._apps[name] = MemorySessionStore(event_window=self._window)
        return store

    async def check(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _find(self, key: tuple[str, str], now_ms: int) -> _Record | None:
        record = self._records.get(key)
        if record is not None and record.session.expire_time_ms <= now_ms:
            self._forget(key)
            return None
        return record

    def _live(self, user_id: str, session_id: str, now_ms: int) -> _Record:
        record = self._find((user_id, session_id), now_ms)
        if record is None:
            raise SessionNotFound(session_id)
        return record

    def _forget(self, key: tuple[str, str], *, keep_log: bool = False) -> None:
        """Drops the session's record, and its log unless ``keep_log`` (a deletion's)."""
        self._records.pop(key, None)
        if not keep_log:
            self._drop_log(key)
        user_sessions = self._by_user.get(key[0])
        if user_sessions is not None:
            user_sessions.discard(key[1])
            if not user_sessions:
                # The user's state lives as long as they have sessions (as in Redis).
                del self._by_user[key[0]]
                self._user_state.pop(key[0], None)

    def _sweep(self, now_ms: int) -> None:
        # Expired sessions of users who never come back would otherwise stay forever.
        if now_ms - self._last_sweep_ms < _SWEEP_INTERVAL_MS:
            return
        self._last_sweep_ms = now_ms
        for key in [k for k, r in self._records.items() if r.session.expire_time_ms <= now_ms]:
            self._forget(key)
        for key in [k for k, log in self._logs.items() if _held_out(log, now_ms)]:
            self._drop_log(key)

    def _log(self, key: tuple[str, str], now_ms: int, *, writing: bool = True) -> _Log:
        """The session's log, made if it has none. A deleted session's log that is still
        held when the session made again with its id writes is that session's: it
        numbers on, and lives with it."""
        log = self._logs.get(key)
        if log is not None and log.deleted_until_ms is not None:
            if _held_out(log, now_ms):
                self._drop_log(key)
                log = None
            elif writing and key in self._records:
                log.deleted_until_ms = None
        if log is None:
            log = self._logs[key] = _Log(self._window.max_events)
        return log

    def _drop_log(self, key: tuple[str, str]) -> None:
        log = self._logs.pop(key, None)
        if log is not None:
            log.dropped = True
            log.wake()  # its watchers find out why

    def _append(self, log: _Log, now_ms: int, events: Iterable[SessionEvent]) -> int:
        """Numbers and appends ``events`` at ``now_ms``, keeps the window, wakes the
        watchers; returns the last sequence number."""
        held = log.events
        for event in events:
            log.last += 1
            held.append(dataclasses.replace(event, sequence=log.last, time_ms=now_ms))
        oldest_ms = now_ms - self._window.max_age_ms
        while held and held[0].time_ms < oldest_ms:
            held.popleft()
        log.wake()
        return log.last

    def _log_session(self, record: _Record, kind: EventKind, now_ms: int) -> None:
        """Logs an event of ``kind`` that carries the session after the write."""
        # A compression's event is the one whose point is the summary.
        compressed = kind is EventKind.COMPRESSED
        session = self._view(record) if compressed else self._logged_view(record)
        event = SessionEvent(kind=kind, session=session)
        self._append(self._log(record.key, now_ms), now_ms, [event])

    def _logged_view(self, record: _Record) -> Session:
        """The session as events carry it: without its summary, as in Redis, where it
        would be copied into every event."""
        return dataclasses.replace(self._view(record), summary="")

    def _owned(
        self, user_id: str, session_id: str, index: int, run_id: str, now_ms: int
    ) -> _Record:
        """The session's record, if run ``run_id`` still owns its turn ``index``."""
        record = self._find((user_id, session_id), now_ms)
        running = record.session.running if record is not None else None
        if record is None or running is None or (running.index, running.run_id) != (index, run_id):
            raise RunSuperseded(session_id, index)
        return record

    @staticmethod
    def _touched(session: Session, now_ms: int) -> Session:
        return dataclasses.replace(
            session, update_time_ms=now_ms, last_activity_ms=now_ms, version=session.version + 1
        )

    def _view(self, record: _Record) -> Session:
        state = {k: json.loads(v) for k, v in record.state_json.items()}
        shared = (
            (scopes.USER_PREFIX, self._user_state.get(record.session.user_id, {})),
            (scopes.APP_PREFIX, self._app_state),
        )
        for prefix, scope in shared:
            state.update((prefix + k, json.loads(v)) for k, v in scope.items())
        return dataclasses.replace(record.session, state=state, labels=dict(record.session.labels))


def _held_out(log: _Log, now_ms: int) -> bool:
    """Whether the log of a deleted session has been held long enough."""
    return log.deleted_until_ms is not None and log.deleted_until_ms <= now_ms


def _run_events(events: Sequence[SessionEvent], run_id: str, index: int) -> list[SessionEvent]:
    """A run's DELTA and ITEM events as its turn's log holds them."""
    for event in events:
        if event.kind not in _RUN_KINDS:
            raise ValueError(f"a run publishes DELTA and ITEM events, not {event.kind.name}")
    return [
        SessionEvent(kind=e.kind, run_id=run_id, turn_index=index, text=e.text, item=e.item)
        for e in events
    ]
