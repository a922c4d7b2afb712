"""The seam between sessions and the agents that answer them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent_sessions.model import Item, JsonValue, StateDelta, TokenUsage, Turn

AgentEvent = str | StateDelta | TokenUsage | Item
"""What an agent yields: reply text, a state change, the tokens it spent, or an item of
what it did (a tool call, its result, a message): stored with the turn, in order."""


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What an agent knows when it answers a turn.

    ``history`` holds the session's recent completed turns, oldest first; older
    turns are folded into ``summary``.
    """

    session_id: str
    user_id: str
    agent_id: str
    turn_index: int
    state: Mapping[str, JsonValue]
    summary: str
    history: Sequence[Turn]


@runtime_checkable
class Agent(Protocol):
    """Produces the reply to one turn.

    ``stream`` is an async generator: it yields the reply as text chunks, in order, as
    they are produced; it may also yield :class:`StateDelta` objects, which are merged
    and committed with the turn only if it completes, and :class:`TokenUsage`, which is
    added up and stored with the turn. Raising fails the turn (the user's input is
    kept; :mod:`agent_sessions.errors` says which status each error gives); the
    run closes the generator promptly when the caller goes away.

    An agent that never reads the items of its history's turns (``Turn.items``) may say
    so with a class attribute ``reads_items = False``: when no configured agent reads
    them, runs do not read them from the store (nor decode them).
    """

    def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]: ...
