"""State scopes: which state a key names, by the prefixes agent frameworks use (ADK's).

A session's state is the merged view of three scopes: its own keys, the user's
(``user:k``, shared by the user's sessions of one app) and the app's (``app:k``, shared by
all of its users). ``temp:k`` keys live only as long as the write that carries them: they
are never stored. Stores keep each scope apart, without the prefix, and return the merged
view with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent_sessions.model import JsonValue, StateDelta

USER_PREFIX = "user:"
APP_PREFIX = "app:"
TEMP_PREFIX = "temp:"


def stored_state(state: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """``state`` without its temporary keys."""
    return {k: v for k, v in state.items() if not k.startswith(TEMP_PREFIX)}


def stored_delta(delta: StateDelta) -> StateDelta:
    """``delta`` without its temporary keys."""
    if not any(k.startswith(TEMP_PREFIX) for k in (*delta.set, *delta.delete)):
        return delta
    return StateDelta(
        set=stored_state(delta.set),
        delete=frozenset(k for k in delta.delete if not k.startswith(TEMP_PREFIX)),
    )


def touches_app(delta: StateDelta) -> bool:
    """Whether ``delta`` writes the app's state."""
    return touches_app_state(delta.set) or any(k.startswith(APP_PREFIX) for k in delta.delete)


def touches_app_state(state: Mapping[str, JsonValue]) -> bool:
    """Whether writing ``state`` writes the app's state."""
    return any(k.startswith(APP_PREFIX) for k in state)
