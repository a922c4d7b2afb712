"""Tenants: each calling service with a tenant token sees only its own sessions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from agent_sessions.server import SessionServer
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, reply_of, rpc_error, state_of

TENANTS = {"acme": "token-of-acme", "globex": "token-of-globex"}
SHARED = "token-without-a-tenant"


def as_caller(token: str) -> dict[str, Any]:
    return {"metadata": (("authorization", f"Bearer {token}"),)}


@pytest.fixture
async def stub(store_url: str, key_prefix: str) -> AsyncIterator[Stub]:
    settings = server_settings(store_url, key_prefix, tenant_tokens=TENANTS, auth_tokens=[SHARED])
    server = SessionServer(settings)
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield Stub(channel)
    await server.stop(0)


async def create(stub: Stub, token: str, city: str) -> pb.Session:
    request = pb.CreateSessionRequest(
        user_id="user-1", agent_id="echo", session_id="s-1", state_json=json.dumps({"city": city})
    )
    session: pb.Session = await stub.CreateSession(
        request,
        **as_caller(token),
    )
    return session


async def test_the_same_user_and_session_id_under_two_tenants_are_two_sessions(
    stub: Stub,
) -> None:
    await create(stub, TENANTS["acme"], "Shanghai")
    await create(stub, TENANTS["globex"], "Beijing")
    await create(stub, SHARED, "Tokyo")

    seen = {}
    for name, token in [*TENANTS.items(), ("shared", SHARED)]:
        got = await stub.GetSession(
            pb.GetSessionRequest(session_id="s-1", user_id="user-1"), **as_caller(token)
        )
        seen[name] = state_of(got)["city"]

    assert seen == {"acme": "Shanghai", "globex": "Beijing", "shared": "Tokyo"}


async def test_a_tenant_cannot_read_list_or_run_another_tenants_session(stub: Stub) -> None:
    await create(stub, TENANTS["acme"], "Shanghai")
    intruder = as_caller(TENANTS["globex"])

    read = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(session_id="s-1", user_id="user-1"), **intruder)
    )
    listed = await stub.ListSessions(pb.ListSessionsRequest(user_id="user-1"), **intruder)
    run = await rpc_error(
        stub.Run(
            pb.RunRequest(session_id="s-1", user_id="user-1", input="let me in"), **intruder
        ).read()
    )

    assert read.code() == run.code() == StatusCode.NOT_FOUND
    assert list(listed.sessions) == []


async def test_a_tenants_turns_run_and_stay_in_its_namespace(stub: Stub) -> None:
    await create(stub, TENANTS["acme"], "Shanghai")
    caller = as_caller(TENANTS["acme"])

    events = [
        event
        async for event in stub.Run(
            pb.RunRequest(session_id="s-1", user_id="user-1", input="hello"), **caller
        )
    ]
    history = await stub.ListTurns(
        pb.ListTurnsRequest(session_id="s-1", user_id="user-1"), **caller
    )

    assert reply_of(events) == "Echo (turn 1): hello"
    assert [t.input for t in history.turns] == ["hello"]
