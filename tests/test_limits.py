"""Limits trip with RESOURCE_EXHAUSTED, an ErrorInfo naming the limit, and nothing stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from agent_sessions.server import SessionServer
from tests.agents import ScriptedAgent
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, error_info, reply_of, rpc_error, run, turns


@pytest.fixture
async def limited(
    store_url: str, key_prefix: str, scripted_agent: ScriptedAgent
) -> AsyncIterator[Stub]:
    """A server allowing two sessions per user and one run at a time."""
    settings = server_settings(
        store_url, key_prefix, max_sessions_per_user=2, max_concurrent_runs=1
    )
    server = SessionServer(settings, agents={"scripted": scripted_agent})
    await server.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield Stub(channel)
    await server.stop(0)


async def test_a_user_past_the_session_limit_is_refused_and_nothing_is_stored(
    limited: Stub,
) -> None:
    for _ in range(2):
        await create(limited, user_id="busy")

    error = await rpc_error(create(limited, user_id="busy", session_id="third"))

    assert error.code() == StatusCode.RESOURCE_EXHAUSTED
    assert error_info(error).reason == "TOO_MANY_SESSIONS"
    assert error_info(error).metadata["max_sessions_per_user"] == "2"
    missing = await rpc_error(
        limited.GetSession(pb.GetSessionRequest(session_id="third", user_id="busy"))
    )
    assert missing.code() == StatusCode.NOT_FOUND
    assert (await create(limited, user_id="someone-else")).session_id


async def test_a_deleted_session_frees_its_place(limited: Stub) -> None:
    first = await create(limited, user_id="busy")
    await create(limited, user_id="busy")

    await limited.DeleteSession(
        pb.DeleteSessionRequest(session_id=first.session_id, user_id="busy")
    )

    assert (await create(limited, user_id="busy")).session_id


async def test_runs_past_the_concurrency_limit_are_refused_and_record_nothing(
    limited: Stub, scripted_agent: ScriptedAgent
) -> None:
    busy = await create(limited, agent_id="scripted", user_id="a")
    other = await create(limited, agent_id="scripted", user_id="b")
    running = asyncio.ensure_future(run(limited, busy, "wait"))
    await scripted_agent.started.wait()

    error = await rpc_error(run(limited, other, "me too"))
    scripted_agent.release.set()
    await running
    after = await run(limited, other, "now?")

    assert error.code() == StatusCode.RESOURCE_EXHAUSTED
    assert error_info(error).reason == "TOO_MANY_RUNS"
    assert error_info(error).metadata["max_concurrent_runs"] == "1"
    assert reply_of(after) == "count=1 history=0"
    assert [t.input for t in await turns(limited, other)] == ["now?"]
