"""A session store that times every call of the store it wraps, for the metrics.

Each call costs two clock reads and one observation in a histogram child made once per
operation. Only backend failures count as errors: ``StoreUnavailable`` (Redis cannot be
reached, is out of memory, ...) and unexpected exceptions, labelled with their class
name. The other domain errors (a missing session, an etag mismatch, a turn running,
...) are ordinary answers: they are timed like any other. A call cancelled by its
caller is neither timed nor counted. A watch is not timed: it lasts as long as its
watcher does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from agent_sessions.errors import NotReplicated, SessionError, StoreUnavailable
from agent_sessions.model import (
    Fold,
    Item,
    ItemPage,
    ItemsWrite,
    ItemsWritten,
    Session,
    SessionCursor,
    SessionPage,
    SessionPatch,
    Turn,
    TurnOutcome,
    TurnPage,
    TurnStart,
)
from agent_sessions.session_events import SessionEvent
from agent_sessions.store.protocol import SessionStore

if TYPE_CHECKING:
    from agent_sessions.observe.metrics import SessionMetrics

T = TypeVar("T")

UNAVAILABLE = StoreUnavailable.__name__
NOT_REPLICATED = NotReplicated.__name__


class _Operation:
    """One operation's label children, made once."""

    __slots__ = ("_errors", "_unexpected", "duration", "name", "not_replicated", "unavailable")

    def __init__(self, metrics: SessionMetrics, name: str) -> None:
        self.name = name
        self.duration = metrics.store_duration.labels(name)
        self.unavailable = metrics.store_errors.labels(name, UNAVAILABLE)
        self.not_replicated = metrics.store_errors.labels(name, NOT_REPLICATED)
        self._errors = metrics.store_errors
        self._unexpected: dict[str, Any] = {}

    def unexpected(self, error: Exception) -> None:
        kind = type(error).__name__
        child = self._unexpected.get(kind)
        if child is None:
            child = self._unexpected[kind] = self._errors.labels(self.name, kind)
        child.inc()


class _Operations:
    """Every operation's children: shared by a store and its namespaces."""

    def __init__(self, metrics: SessionMetrics) -> None:
        self.metrics = metrics
        self.create = _Operation(metrics, "create")
        self.import_session = _Operation(metrics, "import_session")
        self.get = _Operation(metrics, "get")
        self.list = _Operation(metrics, "list")
        self.update = _Operation(metrics, "update")
        self.end = _Operation(metrics, "end")
        self.delete = _Operation(metrics, "delete")
        self.begin_turn = _Operation(metrics, "begin_turn")
        self.renew_lease = _Operation(metrics, "renew_lease")
        self.finish_turn = _Operation(metrics, "finish_turn")
        self.publish = _Operation(metrics, "publish")
        self.list_turns = _Operation(metrics, "list_turns")
        self.fold = _Operation(metrics, "fold")
        self.write_items = _Operation(metrics, "write_items")
        self.list_items = _Operation(metrics, "list_items")
        self.pop_item = _Operation(metrics, "pop_item")
        self.clear_items = _Operation(metrics, "clear_items")
        self.ping = _Operation(metrics, "ping")


async def _timed(operation: _Operation, call: Awaitable[T]) -> T:
    clock = time.perf_counter
    started = clock()
    try:
        result = await call
    except SessionError as error:
        operation.duration.observe(clock() - started)
        if isinstance(error, NotReplicated):
            operation.not_replicated.inc()
        elif isinstance(error, StoreUnavailable):
            operation.unavailable.inc()
        raise
    except Exception as error:
        operation.duration.observe(clock() - started)
        operation.unexpected(error)
        raise
    operation.duration.observe(clock() - started)
    return result


class MeteredSessionStore:
    """A :class:`SessionStore` that delegates every call to ``store`` and times it in
    ``metrics`` (``sessions_store_duration_seconds``, ``sessions_store_errors_total``).

    Its namespaces are metered the same way, under the same labels (no tenant label);
    ``close`` is delegated, not timed.
    """

    def __init__(
        self, store: SessionStore, metrics: SessionMetrics, *, _ops: _Operations | None = None
    ) -> None:
        self._store = store
        self._ops = _Operations(metrics) if _ops is None else _ops

    async def create(self, session: Session, *, max_sessions_per_user: int = 0) -> Session:
        return await _timed(
            self._ops.create,
            self._store.create(session, max_sessions_per_user=max_sessions_per_user),
        )

    async def import_session(
        self, session: Session, turns: Sequence[Turn], *, max_sessions_per_user: int = 0
    ) -> Session:
        return await _timed(
            self._ops.import_session,
            self._store.import_session(session, turns, max_sessions_per_user=max_sessions_per_user),
        )

    async def get(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        return await _timed(
            self._ops.get, self._store.get(user_id=user_id, session_id=session_id, now_ms=now_ms)
        )

    async def list(
        self,
        *,
        user_id: str,
        agent_id: str | None,
        page_size: int,
        after: SessionCursor | None,
        now_ms: int,
    ) -> SessionPage:
        return await _timed(
            self._ops.list,
            self._store.list(
                user_id=user_id,
                agent_id=agent_id,
                page_size=page_size,
                after=after,
                now_ms=now_ms,
            ),
        )

    async def update(
        self,
        *,
        user_id: str,
        session_id: str,
        patch: SessionPatch,
        expected_etag: str | None,
        now_ms: int,
    ) -> Session:
        return await _timed(
            self._ops.update,
            self._store.update(
                user_id=user_id,
                session_id=session_id,
                patch=patch,
                expected_etag=expected_etag,
                now_ms=now_ms,
            ),
        )

    async def end(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        return await _timed(
            self._ops.end, self._store.end(user_id=user_id, session_id=session_id, now_ms=now_ms)
        )

    async def delete(self, *, user_id: str, session_id: str, now_ms: int) -> None:
        await _timed(
            self._ops.delete,
            self._store.delete(user_id=user_id, session_id=session_id, now_ms=now_ms),
        )

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
        return await _timed(
            self._ops.begin_turn,
            self._store.begin_turn(
                user_id=user_id,
                session_id=session_id,
                text=text,
                request_id=request_id,
                run_id=run_id,
                lease_ms=lease_ms,
                history_turns=history_turns,
                now_ms=now_ms,
                history_items=history_items,
            ),
        )

    async def renew_lease(
        self, *, user_id: str, session_id: str, index: int, run_id: str, lease_ms: int, now_ms: int
    ) -> None:
        await _timed(
            self._ops.renew_lease,
            self._store.renew_lease(
                user_id=user_id,
                session_id=session_id,
                index=index,
                run_id=run_id,
                lease_ms=lease_ms,
                now_ms=now_ms,
            ),
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
        return await _timed(
            self._ops.finish_turn,
            self._store.finish_turn(
                user_id=user_id,
                session_id=session_id,
                turn=turn,
                run_id=run_id,
                outcome=outcome,
                now_ms=now_ms,
                pending=pending,
            ),
        )

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
        return await _timed(
            self._ops.publish,
            self._store.publish(
                user_id=user_id,
                session_id=session_id,
                run_id=run_id,
                turn_index=turn_index,
                events=events,
                now_ms=now_ms,
            ),
        )

    def watch(
        self,
        *,
        user_id: str,
        session_id: str,
        after: int | None,
        clock: Callable[[], int],
        live: bool = True,
        on_idle: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[SessionEvent]:
        return self._store.watch(
            user_id=user_id,
            session_id=session_id,
            after=after,
            clock=clock,
            live=live,
            on_idle=on_idle,
        )

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
        return await _timed(
            self._ops.list_turns,
            self._store.list_turns(
                user_id=user_id,
                session_id=session_id,
                start_index=start_index,
                limit=limit,
                newest_first=newest_first,
                include_archived=include_archived,
                now_ms=now_ms,
            ),
        )

    async def fold(self, *, user_id: str, session_id: str, fold: Fold, now_ms: int) -> Session:
        return await _timed(
            self._ops.fold,
            self._store.fold(user_id=user_id, session_id=session_id, fold=fold, now_ms=now_ms),
        )

    async def write_items(
        self, *, user_id: str, session_id: str, write: ItemsWrite, now_ms: int
    ) -> ItemsWritten:
        return await _timed(
            self._ops.write_items,
            self._store.write_items(
                user_id=user_id, session_id=session_id, write=write, now_ms=now_ms
            ),
        )

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
        return await _timed(
            self._ops.list_items,
            self._store.list_items(
                user_id=user_id,
                session_id=session_id,
                after=after,
                before=before,
                limit=limit,
                newest_first=newest_first,
                now_ms=now_ms,
                include_archived=include_archived,
            ),
        )

    async def pop_item(
        self, *, user_id: str, session_id: str, now_ms: int
    ) -> tuple[Item | None, Session]:
        return await _timed(
            self._ops.pop_item,
            self._store.pop_item(user_id=user_id, session_id=session_id, now_ms=now_ms),
        )

    async def clear_items(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        return await _timed(
            self._ops.clear_items,
            self._store.clear_items(user_id=user_id, session_id=session_id, now_ms=now_ms),
        )

    def namespace(self, name: str) -> SessionStore:
        return MeteredSessionStore(self._store.namespace(name), self._ops.metrics, _ops=self._ops)

    def app(self, name: str) -> SessionStore:
        if not name:
            return self
        return MeteredSessionStore(self._store.app(name), self._ops.metrics, _ops=self._ops)

    async def check(self) -> None:
        await self._store.check()

    async def ping(self) -> None:
        await _timed(self._ops.ping, self._store.ping())

    async def close(self) -> None:
        await self._store.close()
