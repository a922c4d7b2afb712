"""The storage boundary every session store implements.

A store enforces the rules that must hold atomically with a write (ownership,
status, max turns, the one running turn, etags) because only the store can check
and write in one step; the session logic decides everything else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

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

ABANDONED_TURN_ERROR = "abandoned: the run did not finish within its lease"
"""The error every store records on a running turn that begin_turn finds past its lease."""


@runtime_checkable
class SessionStore(Protocol):
    """Keeps sessions and their turns.

    Every method takes the owning ``user_id``: a session of another user is
    reported as :class:`~agent_sessions.errors.SessionNotFound`, like an unknown or
    expired one. ``now_ms`` is the caller's clock, in epoch milliseconds. Stores
    raise :class:`~agent_sessions.errors.StoreUnavailable` when their backend
    cannot be reached.
    """

    async def create(self, session: Session, *, max_sessions_per_user: int = 0) -> Session:
        """Stores a new session; raises ``SessionAlreadyExists`` if its id is taken, and
        ``TooManySessions`` if its user already has ``max_sessions_per_user`` live
        sessions (0: no limit). If the session that holds the id was stored with the same
        non-empty ``create_request_id``, returns it unchanged (a retried create)."""
        ...

    async def import_session(
        self, session: Session, turns: Sequence[Turn], *, max_sessions_per_user: int = 0
    ) -> Session:
        """Stores a new session with a finished history; raises ``SessionAlreadyExists`` if
        its id is taken, ``TooManySessions`` as :meth:`create` does.

        ``turns`` are the whole history after the session's ``folded_turns``, indexes
        folded_turns+1..n in order, none in progress, each with its ``items`` (numbered,
        within the session's ``last_item_sequence``); the session's counts already
        agree with them. The session and all its turns are
        written in one atomic step, and each turn's request id is registered as
        :meth:`begin_turn` registers it (of turns sharing one, the last wins), so that
        :meth:`begin_turn` replays a completed turn by its request id.
        """
        ...

    async def get(self, *, user_id: str, session_id: str, now_ms: int) -> Session: ...

    async def list(
        self,
        *,
        user_id: str,
        agent_id: str | None,
        page_size: int,
        after: SessionCursor | None,
        now_ms: int,
    ) -> SessionPage:
        """Live sessions of a user, most recent activity first, ties by id descending."""
        ...

    async def update(
        self,
        *,
        user_id: str,
        session_id: str,
        patch: SessionPatch,
        expected_etag: str | None,
        now_ms: int,
    ) -> Session:
        """Applies the patch; raises ``EtagMismatch`` when ``expected_etag`` is stale."""
        ...

    async def end(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        """Marks the session ENDED (idempotent); it stays readable until it expires."""
        ...

    async def delete(self, *, user_id: str, session_id: str, now_ms: int) -> None: ...

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
        """Records a new IN_PROGRESS turn with the user's input and returns the context.

        Checks, in this order: the session exists for this user; a completed turn
        with the same non-empty ``request_id`` is returned as a replay; the session
        is ACTIVE (``SessionEnded``); fewer than ``max_turns`` turns completed
        (``MaxTurnsReached``); no other turn is running (``TurnInProgress``), where
        a running turn whose lease ran out is marked FAILED and no longer counts.
        When the running turn was begun with the same non-empty ``request_id``, the
        ``TurnInProgress`` names its ``run_id`` (the caller may attach to it).
        ``history`` holds the completed turns among the last ``history_turns``, and
        ``history_items`` the newest ``history_items`` items of the history.

        The new turn's RUN_STARTED event is logged in the same step; its sequence number
        is the returned ``event_sequence``, and ``watched`` says whether someone watches
        the session's log.
        """
        ...

    async def renew_lease(
        self, *, user_id: str, session_id: str, index: int, run_id: str, lease_ms: int, now_ms: int
    ) -> None:
        """Extends the lease of running turn ``index`` to ``now_ms + lease_ms``: the
        heartbeat of the run that owns it, so that a run whose process died frees its
        session within one lease, whatever the run timeout.

        Raises ``RunSuperseded`` when ``run_id`` no longer owns the turn (another run
        found its lease run out and failed it, or the session is gone).
        """
        ...

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
        """Stores the outcome of ``turn`` (as :meth:`begin_turn` returned it), its state
        delta, its items (numbered on from the session's ``last_item_sequence`` as
        begin_turn saw it: no item is written while a turn runs) and counters in one
        atomic step.

        In the same step it logs ``pending`` (the run's deltas and items not yet
        published, as :meth:`publish` would), then the TURN_COMMITTED event.

        Raises ``RunSuperseded`` when ``run_id`` no longer owns the turn.
        """
        ...

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
        """Logs a running turn's DELTA and ITEM events, in order, in one step, if
        ``run_id`` still owns turn ``turn_index``; raises ``RunSuperseded`` (and logs
        nothing) otherwise. Returns whether someone watches the session's log."""
        ...

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
        """The session's events after sequence number ``after`` (``None``: from now on),
        then live ones, as they are logged; unbounded until the session goes. Without
        ``live``, only the events held now (after a GAP, if any), then it ends.

        Raises ``SessionNotFound`` before the first event when the user has no such live
        session. Yields a GAP event first when the log no longer holds the event after
        ``after`` (or was started anew since). Ends after a DELETED event, or an EXPIRED
        one when it finds the session gone (it checks every ``idle_check_ms`` of its
        window while nothing is logged, and then awaits ``on_idle``, whose exception
        ends the watch). A watcher that reads slowly never holds up a write: the log is
        trimmed under it, and it gets a GAP.
        """
        ...

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
        """Up to ``limit`` turns from ``start_index`` on (inclusive), by index.

        ``None`` starts at the oldest turn of the history (of the archive, with
        ``include_archived``) or at the newest. Folded turns come back only with
        ``include_archived``, and only those that were archived.
        """
        ...

    async def write_items(
        self, *, user_id: str, session_id: str, write: ItemsWrite, now_ms: int
    ) -> ItemsWritten:
        """Stores ``write.items`` as one new COMPLETED turn (with ``write.input`` and
        ``write.output`` as its text views) and applies its state delta, in one atomic
        step; with ``write.replace_after``, the items after that sequence number are
        removed in the same step.

        Checks, in this order: the session exists for this user; a turn with the same
        non-empty ``request_id`` has items (the write is replayed: nothing is written,
        its items are returned); the session is ACTIVE (``SessionEnded``); no turn is
        running (``TurnInProgress``; a running turn whose lease ran out is marked FAILED
        and no longer counts); fewer than ``max_turns`` turns completed
        (``MaxTurnsReached``); ``expected_last_sequence`` is the sequence number of
        the newest item in the history, 0 for none (``SequenceMismatch``);
        ``expected_etag`` is its etag (``EtagMismatch``). Items are numbered on from
        ``last_item_sequence``; an item whose non-empty ``item_id`` the history already
        holds is not stored again, and the stored one is returned in its place.
        """
        ...

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
        """Up to ``limit`` items with ``after < sequence < before`` (no upper bound when
        None), by sequence; with ``include_archived``, the items that folds archived
        too (all older than the history's)."""
        ...

    async def pop_item(
        self, *, user_id: str, session_id: str, now_ms: int
    ) -> tuple[Item | None, Session]:
        """Removes the newest item and returns it (None when there is none), atomically.
        Refused like a write: ``SessionEnded``, ``TurnInProgress``."""
        ...

    async def clear_items(self, *, user_id: str, session_id: str, now_ms: int) -> Session:
        """Removes every item and turn of the history (the archive stays): the summary is
        emptied and ``folded_turns`` becomes ``total_turns``, so that nothing is
        renumbered. Refused like a write: ``SessionEnded``, ``TurnInProgress``."""
        ...

    async def fold(self, *, user_id: str, session_id: str, fold: Fold, now_ms: int) -> Session:
        """Folds turns into the summary: they leave the history with their items (into
        the archive with ``fold.archive``), ``summary``, ``folded_turns`` and
        ``history_bytes`` change, and nothing else does. Raises ``FoldConflict`` when the
        fold no longer applies.
        """
        ...

    def namespace(self, name: str) -> SessionStore:
        """A store of the same kind whose sessions are apart from this one's (a tenant's).

        It shares this store's connection; close only this one.
        """
        ...

    def app(self, name: str) -> SessionStore:
        """The store of app ``name`` ("": this one): its sessions, users' state and app
        state are apart from every other app's. It shares this store's connection.

        Every store keeps state in three scopes (see :mod:`agent_sessions.scopes`): a
        write routes each key by its prefix, in the same atomic step as the rest of the
        write, and a returned session's ``state`` is the merged view.
        """
        ...

    async def check(self) -> None:
        """Raises ``StoreMisconfigured`` when the store as configured could never serve;
        called once before serving. A backend that is only down is not misconfigured."""
        ...

    async def ping(self) -> None:
        """Returns when the backend answers; raises ``StoreUnavailable`` otherwise."""
        ...

    async def close(self) -> None: ...
