"""What the session logic tells those who watch it: metrics, tracing, logs.

Observers see the moments of a turn and of a compression; they never reach into the
session logic, the agents or the store. They run inline on the turn's path, so they
must be quick and must not raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from agent_sessions.model import Session, Turn

AgentOutcome = Literal["completed", "failed", "cancelled"]


class SessionObserver(Protocol):
    """The moments of the session logic; every method has a no-op in :class:`Observers`."""

    def turn_started(self, *, agent: str, session_id: str, turn_index: int) -> None:
        """A turn was recorded and its agent is being called. ``agent`` is the id of the
        configured agent that answers it (the default agent's for ids it answers)."""

    def agent_finished(self, *, agent: str, outcome: AgentOutcome, seconds: float) -> None:
        """The agent's part of a turn ended: it completed its reply, failed (the turn
        is FAILED), or the run was cancelled; ``seconds`` since the agent was called."""

    def turn_committed(self, *, agent: str, turn: Turn, session: Session) -> None:
        """A completed turn was stored with its reply, state change and counters."""

    def compacted(self, *, session: Session, folded_turns: int, summarizer: str) -> None:
        """Turns were folded into the session's summary (on request or after a turn)."""


class Observers:
    """Several observers as one; with none, every moment costs one empty loop."""

    def __init__(self, observers: Sequence[SessionObserver] = ()) -> None:
        self._observers = tuple(observers)

    def turn_started(self, *, agent: str, session_id: str, turn_index: int) -> None:
        for observer in self._observers:
            observer.turn_started(agent=agent, session_id=session_id, turn_index=turn_index)

    def agent_finished(self, *, agent: str, outcome: AgentOutcome, seconds: float) -> None:
        for observer in self._observers:
            observer.agent_finished(agent=agent, outcome=outcome, seconds=seconds)

    def turn_committed(self, *, agent: str, turn: Turn, session: Session) -> None:
        for observer in self._observers:
            observer.turn_committed(agent=agent, turn=turn, session=session)

    def compacted(self, *, session: Session, folded_turns: int, summarizer: str) -> None:
        for observer in self._observers:
            observer.compacted(session=session, folded_turns=folded_turns, summarizer=summarizer)
