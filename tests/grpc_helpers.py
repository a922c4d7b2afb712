"""Small helpers that keep the gRPC tests readable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.rpc import error_details_pb2, status_pb2

from agent_sessions.agents import Agent
from agent_sessions.config import Settings
from agent_sessions.server import SessionServer

__all__ = [
    "Stub",
    "create",
    "error_info",
    "refusal",
    "reply_of",
    "rpc_error",
    "run",
    "sent_error_info",
    "serving",
    "state_of",
    "turns",
]

if TYPE_CHECKING:
    # The typed stubs know that a stub over a grpc.aio channel returns awaitables.
    from agentsessions.sessions.v1.sessions_pb2_grpc import SessionServiceAsyncStub as Stub
else:
    from agentsessions.sessions.v1.sessions_pb2_grpc import SessionServiceStub as Stub


async def create(
    stub: Stub, user_id: str = "user-1", agent_id: str = "echo", **fields: Any
) -> pb.Session:
    session: pb.Session = await stub.CreateSession(
        pb.CreateSessionRequest(user_id=user_id, agent_id=agent_id, **fields)
    )
    return session


async def run(stub: Stub, session: pb.Session, text: str, **fields: Any) -> list[pb.RunEvent]:
    call = stub.Run(
        pb.RunRequest(
            app=session.app,
            session_id=session.session_id,
            user_id=session.user_id,
            input=text,
            **fields,
        )
    )
    return [event async for event in call]


def state_of(session: pb.Session) -> dict[str, Any]:
    """The session's state, read from its JSON text ("" is the empty state)."""
    state: dict[str, Any] = json.loads(session.state_json) if session.state_json else {}
    return state


def reply_of(events: list[pb.RunEvent]) -> str:
    return "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")


async def turns(stub: Stub, session: pb.Session) -> list[pb.Turn]:
    response = await stub.ListTurns(
        pb.ListTurnsRequest(app=session.app, session_id=session.session_id, user_id=session.user_id)
    )
    return list(response.turns)


def sent_error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo the service sent with this error, or None when it sent no detail."""
    metadata: Any = error.trailing_metadata() or ()
    for key, value in metadata:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            info = error_details_pb2.ErrorInfo()
            assert status.details[0].Unpack(info)
            return info
    return None


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = sent_error_info(error)
    if info is None:
        raise AssertionError(f"no google.rpc.Status detail in {error!r}")
    return info


def refusal(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, str]:
    """What a refused call tells a program: the status code, the ErrorInfo reason and the
    field it names ("" when it names none). Tests assert on these, not on the message."""
    info = error_info(error)
    return error.code(), info.reason, info.metadata.get("field", "")


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


@asynccontextmanager
async def serving(
    settings: Settings, agents: Mapping[str, Agent] | None = None
) -> AsyncIterator[tuple[SessionServer, Stub]]:
    """A started server with these settings and a stub on a channel to it; both end after."""
    server = SessionServer(settings, agents=agents)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield server, Stub(channel)
    finally:
        await server.stop(0)
