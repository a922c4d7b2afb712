"""The session logic: defaults, limits and the life of a turn, independent of gRPC and
storage. :class:`SessionManager` is the entry point; the modules hold one idea each:
the policy, the events it hands out, the life of a turn, and compaction."""

from agent_sessions.sessions.events import (
    Compressed,
    RunCompleted,
    RunDelta,
    RunEvent,
    RunItem,
    RunStarted,
    SessionsPage,
    TurnsPage,
)
from agent_sessions.sessions.manager import SessionManager, new_session_id
from agent_sessions.sessions.policy import (
    MAX_FOLDED_TURNS,
    MAX_IMPORT_TURNS,
    MAX_TURN_INDEX,
    SessionPolicy,
    wall_clock_ms,
)
from agent_sessions.sessions.turns import CANCELLED_ERROR, INTERNAL_ERROR

__all__ = [
    "CANCELLED_ERROR",
    "INTERNAL_ERROR",
    "MAX_FOLDED_TURNS",
    "MAX_IMPORT_TURNS",
    "MAX_TURN_INDEX",
    "Compressed",
    "RunCompleted",
    "RunDelta",
    "RunEvent",
    "RunItem",
    "RunStarted",
    "SessionManager",
    "SessionPolicy",
    "SessionsPage",
    "TurnsPage",
    "new_session_id",
    "wall_clock_ms",
]
