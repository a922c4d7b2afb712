"""A friendly Python client for the agent session service (agentsessions.sessions.v1).

::

    from agent_sessions_client import SessionClient

    with SessionClient("localhost:50051") as client:
        session = client.create_session(user_id="user-123", agent_id="my-agent")
        print(session.run("How's the weather in Shanghai?"))
        for chunk in session.stream("What about Beijing?"):
            print(chunk, end="", flush=True)
        session.end()

``AsyncSessionClient`` offers the same with ``await``. Failed calls raise the
exceptions of :mod:`agent_sessions_client._errors`, all ``SessionsError``.
"""

from agent_sessions_client._async import AsyncSession, AsyncSessionClient
from agent_sessions_client._errors import (
    AbortedError,
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    SessionsError,
    UnauthenticatedError,
    UnavailableError,
)
from agent_sessions_client._sync import Session, SessionClient
from agent_sessions_client._types import (
    Compressed,
    Item,
    ItemType,
    RunEvent,
    SessionEvent,
    SessionInfo,
    SessionStatus,
    TokenUsage,
    Turn,
    TurnStatus,
)

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "AsyncSession",
    "AsyncSessionClient",
    "Compressed",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "Item",
    "ItemType",
    "NotFoundError",
    "RunEvent",
    "Session",
    "SessionClient",
    "SessionEvent",
    "SessionInfo",
    "SessionStatus",
    "SessionsError",
    "TokenUsage",
    "Turn",
    "TurnStatus",
    "UnauthenticatedError",
    "UnavailableError",
]
