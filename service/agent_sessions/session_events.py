"""What a session's event log holds: the events that WatchSession and ResumeRun stream.

Every store keeps, per session, a log of what happened to it, numbered from 1 and
appended in the same atomic step as the write it tells of (a turn's start and commit,
an update, a compression, the end, the deletion). A running turn's deltas and items go
in as the run produces them (:meth:`SessionStore.publish
<agent_sessions.store.SessionStore.publish>`), the rest of them with its commit. The
log is a window: it holds the newest :attr:`EventWindow.max_events`, none older than
:attr:`EventWindow.max_age_ms`, and expires with its session.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from agent_sessions.model import Item, Session, Turn


class EventKind(enum.IntEnum):
    """What happened; the numbers are those the Redis store writes."""

    RUN_STARTED = 1
    DELTA = 2
    ITEM = 3
    TURN_COMMITTED = 4
    SESSION_UPDATED = 5
    COMPRESSED = 6
    ENDED = 7
    DELETED = 8
    EXPIRED = 9
    """Found by the watcher, not logged: the session is gone and nothing deleted it."""
    GAP = 10
    """Told to a watcher, not logged: events after its sequence number are gone."""


TERMINAL_KINDS = frozenset({EventKind.DELETED, EventKind.EXPIRED})
"""The last event a watch yields."""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One event of a session's log.

    ``run_id`` and ``turn_index`` are set on a run's events (started, delta, item, its
    committed turn) and on a turn committed by an append. ``text`` is a delta's text,
    ``item`` an agent's item (unnumbered), ``turn`` the committed turn (with its items
    when it completed), ``session`` the session after a turn, update, compression or
    end (without its summary, which would be copied into every event, except after a
    compression), ``request_id`` the started run's, ``first_sequence`` the oldest sequence number
    a gap's log still holds (0: none).
    """

    kind: EventKind
    sequence: int = 0
    time_ms: int = 0
    run_id: str = ""
    turn_index: int = 0
    text: str = ""
    item: Item | None = None
    turn: Turn | None = None
    session: Session | None = None
    request_id: str = ""
    first_sequence: int = 0


@dataclass(frozen=True, slots=True)
class EventWindow:
    """How much of a session's log a store keeps."""

    max_events: int = 1000
    max_age_ms: int = 10 * 60 * 1000
    deleted_grace_ms: int = 60 * 1000
    """How long the log of a deleted session stays, so that its watchers see it go."""
    idle_check_ms: int = 2000
    """How often a watcher with nothing to read checks that its session still exists."""


DEFAULT_EVENT_WINDOW = EventWindow()
