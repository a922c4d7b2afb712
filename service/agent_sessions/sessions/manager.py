"""The session logic's entry point: sessions created, read, changed, run and compressed."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing

from agent_sessions import paging, scopes, validation
from agent_sessions.agents import AgentRegistry
from agent_sessions.errors import InvalidArgument, quote
from agent_sessions.model import (
    Item,
    ItemsWritten,
    JsonValue,
    Session,
    SessionCursor,
    SessionPatch,
    SessionStatus,
    StateDelta,
    Turn,
    TurnStatus,
    text_bytes,
)
from agent_sessions.session_events import SessionEvent
from agent_sessions.sessions.compaction import Compactor
from agent_sessions.sessions.events import (
    Compressed,
    ItemsPage,
    RunEvent,
    SessionsPage,
    TurnsPage,
)
from agent_sessions.sessions.items import ItemLog
from agent_sessions.sessions.observers import Observers, SessionObserver
from agent_sessions.sessions.policy import (
    MAX_FOLDED_TURNS,
    MAX_IMPORT_ITEMS,
    MAX_IMPORT_TURNS,
    MAX_PAGE_SIZE,
    SESSIONS_PAGE_SIZE,
    TURNS_PAGE_SIZE,
    SessionPolicy,
    wall_clock_ms,
)
from agent_sessions.sessions.tracking import InFlight
from agent_sessions.sessions.turns import TurnRunner
from agent_sessions.store import SessionStore


class SessionManager:
    """Creates, reads, changes and runs sessions over a store and a set of agents."""

    def __init__(
        self,
        store: SessionStore,
        agents: AgentRegistry,
        policy: SessionPolicy,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        observer: SessionObserver | None = None,
    ) -> None:
        self.store = store
        observer = observer if observer is not None else Observers()
        self._agents = agents
        self._policy = policy
        self._clock = clock
        self._in_flight = InFlight()
        self._compactor = Compactor(
            store,
            agents,
            self._policy,
            clock=clock,
            in_flight=self._in_flight,
            observer=observer,
        )
        self._items = ItemLog(self._policy, clock=clock)
        self._turns = TurnRunner(
            store,
            agents,
            self._policy,
            clock=clock,
            in_flight=self._in_flight,
            compactor=self._compactor,
            observer=observer,
        )

    async def create(
        self,
        *,
        user_id: str,
        agent_id: str,
        session_id: str = "",
        ttl_ms: int | None = None,
        idle_timeout_ms: int | None = None,
        max_turns: int | None = None,
        state: dict[str, JsonValue] | None = None,
        labels: dict[str, str] | None = None,
        request_id: str = "",
        external_agent: bool = False,
        app: str = "",
    ) -> Session:
        policy = self._policy
        now = self._clock()
        if request_id and not session_id:
            raise InvalidArgument(
                "request_id",
                "makes a create retry-safe only with a client-chosen session_id; "
                "set session_id too, or leave request_id empty",
            )
        session = Session(
            app=validation.app(app),
            session_id=validation.session_id(session_id) if session_id else new_session_id(),
            user_id=validation.user_id(user_id),
            # An agent that runs elsewhere need not be one this server knows.
            agent_id=(
                validation.agent_id(agent_id) if external_agent else self._known_agent(agent_id)
            ),
            status=SessionStatus.ACTIVE,
            create_time_ms=now,
            update_time_ms=now,
            last_activity_ms=now,
            ttl_ms=self._duration("ttl", ttl_ms, policy.default_ttl_ms),
            idle_timeout_ms=self._duration(
                "idle_timeout", idle_timeout_ms, policy.default_idle_timeout_ms
            ),
            max_turns=validation.max_turns(
                policy.default_max_turns if max_turns is None else max_turns
            ),
            turn_count=0,
            total_turns=0,
            state=scopes.stored_state(
                validation.state(state or {}, max_bytes=policy.max_state_bytes, field="state_json")
            ),
            labels=validation.labels(labels or {}),
            external_agent=external_agent,
            create_request_id=validation.request_id(request_id),
        )
        return await self.store.app(session.app).create(
            session, max_sessions_per_user=policy.max_sessions_per_user
        )

    async def import_session(
        self,
        *,
        user_id: str,
        agent_id: str,
        session_id: str,
        turns: Sequence[Turn],
        ttl_ms: int | None = None,
        idle_timeout_ms: int | None = None,
        max_turns: int | None = None,
        state: dict[str, JsonValue] | None = None,
        labels: dict[str, str] | None = None,
        summary: str = "",
        status: SessionStatus = SessionStatus.ACTIVE,
        folded_turns: int = 0,
        turn_count: int = 0,
        external_agent: bool = False,
        items: Sequence[Item] = (),
        last_item_sequence: int = 0,
        app: str = "",
    ) -> Session:
        """Creates a session with a finished history; see ``SessionService.ImportSession``.

        The session starts a fresh life now; its counts come from ``turns``, which are
        all checked before anything is written, and from ``folded_turns``, the turns
        before them that ``summary`` stands for (of which ``turn_count`` less the
        completed ``turns`` count as completed). Invalid fields are named as in
        ``ImportSessionRequest`` (``snapshot.ttl``, ``snapshot.turns[3].index``).
        """
        policy = self._policy
        app = validation.app(app, field="snapshot.app")
        session_id = validation.session_id(session_id, field="snapshot.session_id")
        user_id = validation.user_id(user_id, field="snapshot.user_id")
        agent_id = (
            validation.agent_id(agent_id, field="snapshot.agent_id")
            if external_agent
            else self._known_agent(agent_id, field="snapshot.agent_id")
        )
        ttl_ms = self._duration("snapshot.ttl", ttl_ms, policy.default_ttl_ms)
        idle_timeout_ms = self._duration(
            "snapshot.idle_timeout", idle_timeout_ms, policy.default_idle_timeout_ms
        )
        max_turns = validation.max_turns(
            policy.default_max_turns if max_turns is None else max_turns, field="snapshot.max_turns"
        )
        state = scopes.stored_state(
            validation.state(
                state or {}, max_bytes=policy.max_state_bytes, field="snapshot.state_json"
            )
        )
        labels = validation.labels(labels or {}, field="snapshot.labels")
        if not 0 <= folded_turns <= MAX_FOLDED_TURNS:
            raise InvalidArgument(
                "snapshot.folded_turns",
                f"is {folded_turns}; it must be between 0 and {MAX_FOLDED_TURNS}",
            )
        summary = validation.summary(summary, max_bytes=policy.max_summary_bytes)
        # A turn of appended items has the text its items gave it, maybe none.
        history = self._importable(
            turns,
            first_index=folded_turns + 1,
            may_be_silent=(
                {t.index for t in turns} if external_agent else {i.turn_index for i in items}
            ),
        )
        history = self._with_items(history, items)
        completed = sum(t.status is TurnStatus.COMPLETED for t in history)
        now = self._clock()
        session = Session(
            app=app,
            session_id=session_id,
            user_id=user_id,
            agent_id=agent_id,
            status=status,
            create_time_ms=now,
            update_time_ms=now,
            last_activity_ms=now,
            ttl_ms=ttl_ms,
            idle_timeout_ms=idle_timeout_ms,
            max_turns=max_turns,
            turn_count=completed + min(max(turn_count - completed, 0), folded_turns),
            total_turns=folded_turns + len(history),
            state=state,
            labels=labels,
            summary=summary,
            folded_turns=folded_turns,
            history_bytes=sum(text_bytes(t) for t in history),
            external_agent=external_agent,
            last_item_sequence=max(last_item_sequence, items[-1].sequence if items else 0),
        )
        return await self.store.app(app).import_session(
            session, history, max_sessions_per_user=policy.max_sessions_per_user
        )

    def _with_items(self, history: list[Turn], items: Sequence[Item]) -> list[Turn]:
        """The turns with their items, checked: numbered in order, each of a turn given."""
        if len(items) > MAX_IMPORT_ITEMS:
            raise InvalidArgument(
                "snapshot.items",
                f"has {len(items)} items; the limit is {MAX_IMPORT_ITEMS} items per import",
            )
        validation.items(
            items,
            max_items=MAX_IMPORT_ITEMS,
            max_payload_bytes=self._policy.max_item_bytes,
            field="snapshot.items",
        )
        by_index = {turn.index: turn for turn in history}
        by_turn: dict[int, list[Item]] = {}
        previous = 0
        for position, item in enumerate(items):
            field = f"snapshot.items[{position}]"
            if item.sequence <= previous:
                raise InvalidArgument(
                    f"{field}.sequence",
                    f"is {item.sequence} after {previous}: sequence numbers are positive "
                    "and strictly increasing",
                )
            previous = item.sequence
            if item.turn_index not in by_index:
                raise InvalidArgument(
                    f"{field}.turn_index", f"is {item.turn_index}, not a turn of the history"
                )
            by_turn.setdefault(item.turn_index, []).append(item)
        return [
            dataclasses.replace(
                turn,
                first_item_sequence=by_turn[turn.index][0].sequence,
                last_item_sequence=by_turn[turn.index][-1].sequence,
                items=tuple(by_turn[turn.index]),
            )
            if turn.index in by_turn
            else turn
            for turn in history
        ]

    def _importable(
        self, turns: Sequence[Turn], first_index: int, may_be_silent: set[int]
    ) -> list[Turn]:
        """The turns of an import, checked: a finished history from ``first_index`` on,
        without gaps, inputs as Run takes them (a turn of items may have none)."""
        if len(turns) > MAX_IMPORT_TURNS:
            raise InvalidArgument(
                "snapshot.turns",
                f"has {len(turns)} turns; the limit is {MAX_IMPORT_TURNS} turns per import",
            )
        completed_by_request: dict[str, int] = {}
        for position, turn in enumerate(turns):
            field = f"snapshot.turns[{position}]"
            if turn.index != position + first_index:
                raise InvalidArgument(
                    f"{field}.index",
                    f"is {turn.index} where {position + first_index} was expected: the "
                    f"turns' indexes run from snapshot.folded_turns + 1 ({first_index}) in "
                    "order, without gaps",
                )
            validation.finished_turn_status(f"{field}.status", turn.status)
            if turn.input or turn.index not in may_be_silent:
                validation.run_input(
                    turn.input, max_bytes=self._policy.max_input_bytes, field=f"{field}.input"
                )
            if turn.output and turn.status is not TurnStatus.COMPLETED:
                raise InvalidArgument(
                    f"{field}.output",
                    f"must be empty for a {turn.status.name} turn: "
                    "only a completed turn keeps a reply",
                )
            validation.request_id(turn.request_id, field=f"{field}.request_id")
            if turn.request_id in completed_by_request:
                # Run replays a completed turn's request id rather than record a new turn.
                raise InvalidArgument(
                    f"{field}.request_id",
                    f"{quote(turn.request_id)} is the request id of completed turn "
                    f"{completed_by_request[turn.request_id]}; a request id may not follow "
                    "its completed turn",
                )
            if turn.request_id and turn.status is TurnStatus.COMPLETED:
                completed_by_request[turn.request_id] = turn.index
        return list(turns)

    async def get(self, *, user_id: str, session_id: str, app: str = "") -> Session:
        return await self._store(app).get(
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            now_ms=self._clock(),
        )

    async def list(
        self,
        *,
        user_id: str,
        agent_id: str = "",
        page_size: int = 0,
        page_token: str = "",
        app: str = "",
    ) -> SessionsPage:
        store = self._store(app)
        validation.user_id(user_id)
        if agent_id:
            validation.agent_id(agent_id)
        size = validation.page_size(page_size, default=SESSIONS_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        query = {"user_id": user_id, "agent_id": agent_id}
        if app:  # the default app's tokens stay those issued before apps existed
            query["app"] = app
        after = None
        if page_token:
            position = paging.decode(page_token, query)
            after = SessionCursor(
                paging.integer(position, "t", minimum=0), paging.text(position, "s")
            )
        page = await store.list(
            user_id=user_id,
            agent_id=agent_id or None,
            page_size=size,
            after=after,
            now_ms=self._clock(),
        )
        token = ""
        if page.next_cursor is not None:
            cursor = page.next_cursor
            token = paging.encode(query, {"t": cursor.last_activity_ms, "s": cursor.session_id})
        return SessionsPage(page.sessions, token)

    async def update(
        self, *, user_id: str, session_id: str, patch: SessionPatch, etag: str = "", app: str = ""
    ) -> Session:
        policy = self._policy
        store = self._store(app)
        if patch == SessionPatch():
            raise InvalidArgument(
                "update_mask",
                "names no field to change: use state_json, labels, ttl, idle_timeout or max_turns",
            )
        if patch.state is not None:
            validation.state(
                patch.state, max_bytes=policy.max_state_bytes, field="session.state_json"
            )
            patch = dataclasses.replace(patch, state=scopes.stored_state(patch.state))
        if patch.state_removals:
            stored = scopes.stored_delta(StateDelta(delete=patch.state_removals))
            patch = dataclasses.replace(patch, state_removals=stored.delete)
        if patch.labels is not None:
            validation.labels(patch.labels)
        if patch.ttl_ms is not None:
            validation.duration_ms("ttl", patch.ttl_ms, max_ms=policy.max_ttl_ms)
        if patch.idle_timeout_ms is not None:
            validation.duration_ms("idle_timeout", patch.idle_timeout_ms, max_ms=policy.max_ttl_ms)
        if patch.max_turns is not None:
            validation.max_turns(patch.max_turns)
        return await store.update(
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            patch=patch,
            expected_etag=etag or None,
            now_ms=self._clock(),
        )

    async def end(self, *, user_id: str, session_id: str, app: str = "") -> Session:
        return await self._store(app).end(
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            now_ms=self._clock(),
        )

    async def delete(self, *, user_id: str, session_id: str, app: str = "") -> None:
        await self._store(app).delete(
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            now_ms=self._clock(),
        )

    async def list_turns(
        self,
        *,
        user_id: str,
        session_id: str,
        page_size: int = 0,
        page_token: str = "",
        newest_first: bool = False,
        include_archived: bool = False,
        include_items: bool = False,
        app: str = "",
    ) -> TurnsPage:
        store = self._store(app)
        validation.user_id(user_id)
        validation.session_id(session_id)
        size = validation.page_size(page_size, default=TURNS_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        query = {
            "session_id": session_id,
            "newest_first": newest_first,
            "include_archived": include_archived,
        }
        # The token keeps the index where the next page starts rather than an offset,
        # so turns added or folded while a caller pages do not shift the pages.
        start = (
            paging.integer(paging.decode(page_token, query), "i", minimum=1) if page_token else None
        )
        page = await store.list_turns(
            user_id=user_id,
            session_id=session_id,
            start_index=start,
            limit=size,
            newest_first=newest_first,
            include_archived=include_archived,
            now_ms=self._clock(),
        )
        token = "" if page.next_index is None else paging.encode(query, {"i": page.next_index})
        turns = page.turns
        if include_items:
            turns = [
                *await self._items.attached(
                    store, user_id=user_id, session_id=session_id, turns=turns
                )
            ]
        return TurnsPage(turns, token)

    async def append_items(
        self,
        *,
        user_id: str,
        session_id: str,
        items: Sequence[Item],
        state_delta: StateDelta | None = None,
        expected_last_sequence: int | None = None,
        etag: str = "",
        request_id: str = "",
        app: str = "",
    ) -> ItemsWritten:
        """Appends items as one new turn; see ``SessionService.AppendItems``."""
        return await self._items.append(
            self._store(app),
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            items=items,
            state_delta=state_delta or StateDelta(),
            expected_last_sequence=expected_last_sequence,
            etag=etag,
            request_id=request_id,
        )

    async def replace_items(
        self,
        *,
        user_id: str,
        session_id: str,
        after_sequence: int,
        items: Sequence[Item],
        expected_last_sequence: int | None = None,
        request_id: str = "",
        app: str = "",
    ) -> ItemsWritten:
        """Replaces the items after ``after_sequence``; see ``SessionService.ReplaceItems``."""
        return await self._items.replace(
            self._store(app),
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            after_sequence=after_sequence,
            items=items,
            expected_last_sequence=expected_last_sequence,
            request_id=request_id,
        )

    async def list_items(
        self,
        *,
        user_id: str,
        session_id: str,
        page_size: int = 0,
        page_token: str = "",
        newest_first: bool = False,
        after_sequence: int = 0,
        include_archived: bool = False,
        app: str = "",
    ) -> ItemsPage:
        return await self._items.list(
            self._store(app),
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            page_size=page_size,
            page_token=page_token,
            newest_first=newest_first,
            after_sequence=after_sequence,
            include_archived=include_archived,
        )

    async def pop_item(
        self, *, user_id: str, session_id: str, app: str = ""
    ) -> tuple[Item | None, Session]:
        return await self._items.pop(
            self._store(app),
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
        )

    async def clear_items(self, *, user_id: str, session_id: str, app: str = "") -> Session:
        return await self._items.clear(
            self._store(app),
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
        )

    async def compress(
        self, *, user_id: str, session_id: str, keep_last: int | None = None, app: str = ""
    ) -> Compressed:
        """Folds all turns but the last ``keep_last`` (the server's default when None) into
        the summary; see ``SessionService.CompressSession``."""
        validation.app(app)
        validation.user_id(user_id)
        validation.session_id(session_id)
        if keep_last is None:
            keep_last = self._policy.keep_last_turns
        elif keep_last < 0:
            raise InvalidArgument(
                "keep_last", f"is {keep_last}; give 0 or more turns to keep, or leave it unset"
            )
        with self._in_flight.track():
            return await self._compactor.compress(app, user_id, session_id, keep_last)

    def run(
        self,
        *,
        user_id: str,
        session_id: str,
        text: str,
        request_id: str = "",
        app: str = "",
        detach: bool = False,
    ) -> AsyncGenerator[RunEvent, None]:
        """Runs one turn, whose events the returned iterator yields; see
        ``SessionService.Run``. A malformed request raises here, before any is yielded.

        Close the iterator (``contextlib.aclosing``) when abandoning it early: the
        turn is then recorded CANCELLED, unless the run is detached.
        """
        validation.app(app)
        validation.user_id(user_id)
        validation.session_id(session_id)
        validation.run_input(text, max_bytes=self._policy.max_input_bytes)
        validation.request_id(request_id)
        # Returned, not iterated here: each event passes one generator less.
        return self._turns.run(app, user_id, session_id, text, request_id, detach=detach)

    async def resume(
        self,
        *,
        user_id: str,
        session_id: str,
        run_id: str = "",
        request_id: str = "",
        after_sequence: int = 0,
        app: str = "",
    ) -> AsyncGenerator[RunEvent, None]:
        """A run's events after ``after_sequence``, then its completion; see
        ``SessionService.ResumeRun``."""
        validation.app(app)
        validation.user_id(user_id)
        validation.session_id(session_id)
        if not run_id and not request_id:
            raise InvalidArgument("run", "name the run to resume: set run_id or request_id")
        if run_id:
            validation.request_id(run_id, field="run_id")
        validation.request_id(request_id)
        _check_sequence(after_sequence)
        followed = self._turns.follow(
            app, user_id, session_id, run_id=run_id, request_id=request_id, after=after_sequence
        )
        async with aclosing(followed) as events:
            async for event in events:
                yield event

    async def watch(
        self,
        *,
        user_id: str,
        session_id: str,
        after_sequence: int | None = None,
        app: str = "",
    ) -> AsyncGenerator[SessionEvent, None]:
        """The session's events; see ``SessionService.WatchSession``."""
        validation.user_id(user_id)
        validation.session_id(session_id)
        if after_sequence is not None:
            _check_sequence(after_sequence)
        watched = self._store(app).watch(
            user_id=user_id, session_id=session_id, after=after_sequence, clock=self._clock
        )
        async for event in watched:
            yield event

    async def settle(self, timeout_s: float) -> None:
        """Waits (at most ``timeout_s``) for runs, the writes that record their end and
        compactions under way."""
        await self._compactor.settle(timeout_s)
        await self._in_flight.idle(timeout_s)

    async def settle_detached(self, timeout_s: float) -> None:
        """Waits (at most ``timeout_s``) for detached runs, then cancels the rest (their
        turns are recorded CANCELLED)."""
        await self._turns.stop_detached(timeout_s)

    def _store(self, app: str) -> SessionStore:
        """The store of ``app``, a valid app name."""
        return self.store.app(validation.app(app))

    def _known_agent(self, agent_id: str, field: str = "agent_id") -> str:
        validation.agent_id(agent_id, field=field)
        if not self._agents.knows(agent_id):
            raise InvalidArgument(
                field,
                f"unknown agent {quote(agent_id)}: "
                f"this server has {', '.join(self._agents.agent_ids)}"
                " (configure more in the agents table, or set a default agent)",
            )
        return agent_id

    def _duration(self, field: str, value: int | None, default: int) -> int:
        if value is None:
            return default
        return validation.duration_ms(field, value, max_ms=self._policy.max_ttl_ms)


def new_session_id() -> str:
    """An unguessable id: 128 random bits, in hex (no leading '-' to confuse command lines)."""
    return secrets.token_hex(16)


def _check_sequence(value: int) -> None:
    if value < 0:
        raise InvalidArgument("after_sequence", f"must be 0 or more, not {value}")
