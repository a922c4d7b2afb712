"""The expected errors, domain and agent alike: what went wrong, in terms of sessions,
turns and the agents that answer them.

The gRPC layer maps each class to one status code, and each error's ``reason`` to
the ``google.rpc.ErrorInfo`` reason sent with it::

    SessionError
    ├── InvalidArgument       INVALID_ARGUMENT
    ├── SessionNotFound       NOT_FOUND
    ├── SessionAlreadyExists  ALREADY_EXISTS
    ├── FailedPrecondition    FAILED_PRECONDITION  (ended session, max turns, agent gone,
    │                                               Run on an external agent's session)
    ├── ResourceExhausted     RESOURCE_EXHAUSTED   (sessions per user, concurrent runs)
    ├── Conflict              ABORTED              (etag or item sequence mismatch, turn
    │                                               running, compression)
    ├── StoreUnavailable      UNAVAILABLE
    └── AgentError            INTERNAL             AGENT_FAILED
        ├── AgentUnavailable  UNAVAILABLE          AGENT_UNAVAILABLE
        └── AgentTimeout      DEADLINE_EXCEEDED    RUN_TIMED_OUT

Agent backends raise the ``AgentError`` kinds with the upstream reason; the session
logic records the turn FAILED with the user's input and raises the same kind again
with the turn's context. Anything else (a bug) is INTERNAL without a reason, and
logged with its traceback.
"""

from __future__ import annotations

from collections.abc import Mapping

QUOTED_CHARS = 64
"""The most characters of a caller's value that an error message quotes."""


def quote(value: str) -> str:
    """A caller's value as an error quotes it: escaped, and cut to a short prefix.

    Errors travel in the ``grpc-message`` header and again in ErrorInfo; a client
    cannot read a status over its metadata limit (16 KiB by default), so an error
    must never echo a large value back whole.
    """
    if len(value) <= QUOTED_CHARS:
        return repr(value)
    return f"{value[:QUOTED_CHARS]!r}… ({len(value)} characters)"


class SessionError(Exception):
    """Base of the expected errors; ``reason`` is a stable UPPER_SNAKE_CASE code."""

    reason = "SESSION_ERROR"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(SessionError):
    """The request is malformed; the message names the field and the rule."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", metadata={"field": field})
        self.field = field


class SessionNotFound(SessionError):
    """No live session has this id for this user (unknown, expired, deleted or not theirs)."""

    reason = "SESSION_NOT_FOUND"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {quote(session_id)} not found for this user: it does not exist, "
            "has expired or was deleted; create a new session",
            metadata={"session_id": session_id},
        )


class RunNotFound(SessionNotFound):
    """No run of the session has this id or request id among the events held."""

    reason = "RUN_NOT_FOUND"

    def __init__(self, session_id: str, run: str) -> None:
        SessionError.__init__(
            self,
            f"session {quote(session_id)} has no run {quote(run)} among the events this "
            "service still holds (a detached run's events are kept for a window after it "
            "ends): read its turn with ListTurns",
            metadata={"session_id": session_id, "run": run},
        )


class SessionAlreadyExists(SessionError):
    """The client-chosen session id is taken."""

    reason = "SESSION_ALREADY_EXISTS"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {quote(session_id)} already exists; choose another session_id "
            "or leave it empty to have one generated",
            metadata={"session_id": session_id},
        )


class FailedPrecondition(SessionError):
    """The session is in a state that forbids the call."""


class SessionEnded(FailedPrecondition):
    reason = "SESSION_ENDED"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {quote(session_id)} has ended and runs no more turns; create a new session",
            metadata={"session_id": session_id},
        )


class MaxTurnsReached(FailedPrecondition):
    reason = "MAX_TURNS_REACHED"

    def __init__(self, session_id: str, max_turns: int) -> None:
        super().__init__(
            f"session {quote(session_id)} reached its limit of max_turns={max_turns} completed "
            "turns; raise max_turns with UpdateSession or create a new session",
            metadata={"session_id": session_id, "max_turns": str(max_turns)},
        )


class ExternalAgentSession(FailedPrecondition):
    reason = "EXTERNAL_AGENT"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {quote(session_id)} belongs to an agent that runs outside the service: "
            "the service cannot run its turns; write them with AppendItems",
            metadata={"session_id": session_id},
        )


class AgentNotConfigured(FailedPrecondition):
    reason = "AGENT_NOT_CONFIGURED"

    def __init__(self, agent_id: str, known: list[str]) -> None:
        super().__init__(
            f"the session's agent {quote(agent_id)} is not configured on this server "
            f"(it has {', '.join(known)}); the turn is kept as FAILED with your input",
            metadata={"agent_id": agent_id},
        )


class ResourceExhausted(SessionError):
    """A limit of the service is reached; nothing was stored."""


class TooManySessions(ResourceExhausted):
    reason = "TOO_MANY_SESSIONS"

    def __init__(self, user_id: str, limit: int) -> None:
        super().__init__(
            f"user {quote(user_id)} has {limit} live sessions, the limit per user; end or delete "
            "some (ended sessions count until they expire), or let them expire",
            metadata={"max_sessions_per_user": str(limit)},
        )


class TooManyRuns(ResourceExhausted):
    reason = "TOO_MANY_RUNS"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this server is running {limit} turns, its limit; retry shortly",
            metadata={"max_concurrent_runs": str(limit)},
        )


class Conflict(SessionError):
    """A concurrent change won; re-read and retry."""


class EtagMismatch(Conflict):
    reason = "ETAG_MISMATCH"

    def __init__(self, session_id: str, expected: str, actual: str) -> None:
        super().__init__(
            f"session {quote(session_id)} changed since etag {quote(expected)} was read "
            f"(now {quote(actual)}); read it again and retry",
            metadata={"session_id": session_id, "etag": actual},
        )


class SequenceMismatch(Conflict):
    reason = "SEQUENCE_MISMATCH"

    def __init__(self, session_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"the newest item of session {quote(session_id)} is {actual}, not {expected}: "
            "another writer came first; read the items again and retry",
            metadata={"session_id": session_id, "newest_item_sequence": str(actual)},
        )


class TurnInProgress(Conflict):
    reason = "TURN_IN_PROGRESS"

    def __init__(self, session_id: str, index: int, run_id: str = "") -> None:
        super().__init__(
            f"turn {index} of session {quote(session_id)} is still running; "
            "wait for it to finish, then run again",
            metadata={"session_id": session_id, "turn_index": str(index)},
        )
        self.index = index
        self.run_id = run_id
        """The running turn's run, when it was begun with the caller's request id."""


class RunSuperseded(Conflict):
    """The turn's lease was taken over (or it was finished) by another run."""

    reason = "RUN_SUPERSEDED"

    def __init__(self, session_id: str, index: int) -> None:
        super().__init__(
            f"turn {index} of session {quote(session_id)} is no longer owned by this run "
            "(it outlived its lease or the session was deleted)",
            metadata={"session_id": session_id, "turn_index": str(index)},
        )


class RunNotCompleted(Conflict):
    """A run that a caller followed (detached, resumed or attached to) ended FAILED or
    CANCELLED; its turn keeps the user's input."""

    reason = "RUN_NOT_COMPLETED"

    def __init__(self, session_id: str, index: int, status: str, error: str) -> None:
        super().__init__(
            f"turn {index} of session {quote(session_id)} ended {status}: {error}; the turn "
            "is kept with your input, and the session can run again",
            metadata={"session_id": session_id, "turn_index": str(index), "status": status},
        )


class EventsLost(Conflict):
    """A follower fell behind the event window: events it needed were trimmed."""

    reason = "EVENTS_LOST"

    def __init__(self, session_id: str, after: int) -> None:
        super().__init__(
            f"the events of session {quote(session_id)} after {after} are no longer held: "
            "read the session and its turns (ListTurns), then follow it again",
            metadata={"session_id": session_id, "after_sequence": str(after)},
        )


class FoldConflict(Conflict):
    """Another compression of the session committed first, or the session was replaced."""

    reason = "COMPRESSION_CONFLICT"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {quote(session_id)} was compressed (or replaced) by another call while this "
            "one summarized it; nothing was changed: read it again and retry if still needed",
            metadata={"session_id": session_id},
        )


class StoreUnavailable(SessionError):
    """The session store cannot be reached; retry later."""

    reason = "STORE_UNAVAILABLE"


class NotReplicated(StoreUnavailable):
    """The store did the write, but fewer replicas than asked confirmed it in time: a
    failover now could lose it. A retry with the same request id completes it."""

    reason = "NOT_REPLICATED"


class StoreMisconfigured(Exception):
    """The store as configured could never serve (Sentinel names no such primary): the
    server refuses to start, saying what to fix."""


class AgentError(SessionError):
    """The agent failed (a rejected request, a malformed stream, an exception of its own);
    the turn is kept as FAILED."""

    reason = "AGENT_FAILED"


class AgentUnavailable(AgentError):
    """The agent cannot be reached or is overloaded (refused, HTTP 5xx or 429); the turn
    is kept as FAILED and a retry may succeed."""

    reason = "AGENT_UNAVAILABLE"


class AgentTimeout(AgentError):
    """The agent did not finish in time; the turn is kept as FAILED."""

    reason = "RUN_TIMED_OUT"
