"""What the session logic hands out: a Run's events, pages, a compression's result."""

from __future__ import annotations

from dataclasses import dataclass

from agent_sessions.model import Item, Session, Turn


@dataclass(frozen=True, slots=True)
class RunStarted:
    turn_index: int
    replayed: bool
    run_id: str = ""
    sequence: int = 0
    """The event's number in the session's event log, when the caller reads it there
    (a detached run, a resumed or attached one); 0 otherwise."""


@dataclass(frozen=True, slots=True)
class RunDelta:
    text: str
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class RunCompleted:
    turn: Turn
    session: Session
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class RunItem:
    """An item the agent produced, before the turn that numbers it is stored."""

    item: Item
    sequence: int = 0


RunEvent = RunStarted | RunDelta | RunItem | RunCompleted


@dataclass(frozen=True, slots=True)
class SessionsPage:
    sessions: list[Session]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class ItemsPage:
    items: list[Item]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class TurnsPage:
    turns: list[Turn]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Compressed:
    """What a compression did: the session after it, how many turns it folded, and
    which summarizer wrote the summary ("agent", "extractive", or "" if none ran)."""

    session: Session
    folded_turns: int
    summarizer: str
