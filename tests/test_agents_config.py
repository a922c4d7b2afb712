"""The agents table over real gRPC: which agent answers which id, with what limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from agent_sessions.server import SessionServer
from launchers.redis_server import RedisServer
from tests.conftest import server_settings
from tests.grpc_helpers import (
    Stub,
    create,
    error_info,
    refusal,
    reply_of,
    rpc_error,
    run,
    state_of,
    turns,
)

StartServer = Callable[..., Awaitable[Stub]]


@pytest.fixture
async def start_server(store_url: str, key_prefix: str) -> AsyncIterator[StartServer]:
    """Starts servers with the given settings on this test's store; stops them after."""
    started: list[tuple[SessionServer, grpc.aio.Channel]] = []

    async def start(**settings: Any) -> Stub:
        server = SessionServer(server_settings(store_url, key_prefix, **settings))
        await server.start()
        channel = grpc.aio.insecure_channel(server.address)
        started.append((server, channel))
        return Stub(channel)

    yield start
    for server, channel in started:
        await channel.close(None)
        await server.stop(0)


async def test_an_unknown_agent_is_refused_when_no_default_is_configured(
    start_server: StartServer,
) -> None:
    stub = await start_server(default_agent=None)

    error = await rpc_error(create(stub, agent_id="nobody"))

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "agent_id")
    assert "echo, weather" in (error.details() or "")  # the agents there are to choose from


async def test_the_default_agent_answers_any_agent_id(start_server: StartServer) -> None:
    stub = await start_server(default_agent="weather")
    session = await create(stub, agent_id="anything")

    events = await run(stub, session, "How's the weather in Shanghai?")

    assert reply_of(events) == "Shanghai is sunny today, 22°C"


async def test_the_weather_conversation_resolves_the_follow_up_from_the_session(
    start_server: StartServer,
) -> None:
    stub = await start_server(default_agent=None)
    session = await create(stub, agent_id="weather")

    first = reply_of(await run(stub, session, "How's the weather in Shanghai?"))
    events = await run(stub, session, "What about Beijing?")
    fresh = await create(stub, agent_id="weather")
    without_context = reply_of(await run(stub, fresh, "What about Beijing?"))

    assert first == "Shanghai is sunny today, 22°C"
    assert reply_of(events) == "Beijing is cloudy today, 18°C"
    assert state_of(events[-1].completed.session)["city"] == "Beijing"
    assert "°C" not in without_context


async def test_a_plugin_agent_is_loaded_by_module_and_attribute(start_server: StartServer) -> None:
    spec = {"kind": "plugin", "object": "tests.agents:ScriptedAgent", "options": {"pause_s": 0.01}}
    stub = await start_server(default_agent=None, agents={"scripted": spec})
    session = await create(stub, agent_id="scripted")

    events = await run(stub, session, "pause")

    assert reply_of(events) == "first half, second half"


async def test_agents_come_from_the_agents_file(start_server: StartServer, tmp_path: Path) -> None:
    agents_file = tmp_path / "agents.toml"
    agents_file.write_text(
        '[agents.forecast]\nkind = "weather"\n\n[agents.parrot]\nkind = "echo"\n'
    )
    stub = await start_server(default_agent=None, agents_file=agents_file)
    session = await create(stub, agent_id="forecast")

    events = await run(stub, session, "How's the weather in Tokyo?")

    assert reply_of(events) == "Tokyo is rainy today, 16°C"
    assert (await create(stub, agent_id="parrot")).agent_id == "parrot"


async def test_a_reply_past_the_agents_size_limit_fails_the_turn(start_server: StartServer) -> None:
    stub = await start_server(agents={"terse": {"kind": "echo", "max_reply_bytes": 20}})
    session = await create(stub, agent_id="terse")

    error = await rpc_error(run(stub, session, "a question long enough to exceed the limit"))

    assert (error.code(), error_info(error).reason) == (StatusCode.INTERNAL, "AGENT_FAILED")
    [turn] = await turns(stub, session)
    assert (turn.status, turn.output) == (pb.TURN_STATUS_FAILED, "")


async def test_an_agent_past_its_own_timeout_fails_the_turn(start_server: StartServer) -> None:
    spec = {"kind": "plugin", "object": "tests.agents:ScriptedAgent", "timeout": 0.3}
    stub = await start_server(agents={"slowpoke": spec})
    session = await create(stub, agent_id="slowpoke")

    error = await rpc_error(run(stub, session, "hang"))

    assert (error.code(), error_info(error).reason) == (
        StatusCode.DEADLINE_EXCEEDED,
        "RUN_TIMED_OUT",
    )
    assert "300 ms" in (error.details() or "")  # its own timeout, not the server's
    [turn] = await turns(stub, session)
    assert (turn.status, turn.input) == (pb.TURN_STATUS_FAILED, "hang")


async def test_a_session_whose_agent_is_no_longer_configured_fails_its_turn(
    redis_server: RedisServer, key_prefix: str
) -> None:
    # Two servers share sessions through Redis: the second lacks the session's agent.
    before = SessionServer(
        server_settings(
            redis_server.url, key_prefix, default_agent=None, agents={"retired": {"kind": "echo"}}
        )
    )
    after = SessionServer(server_settings(redis_server.url, key_prefix, default_agent=None))
    await before.start()
    await after.start()
    try:
        async with (
            grpc.aio.insecure_channel(before.address) as old,
            grpc.aio.insecure_channel(after.address) as new,
        ):
            session = await create(Stub(old), agent_id="retired")
            error = await rpc_error(run(Stub(new), session, "anyone?"))
            [turn] = await turns(Stub(new), session)
    finally:
        await before.stop(0)
        await after.stop(0)

    assert error.code() == StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "AGENT_NOT_CONFIGURED"
    assert (turn.status, turn.input) == (pb.TURN_STATUS_FAILED, "anyone?")


async def test_an_agents_state_change_past_the_state_limit_fails_the_turn(
    start_server: StartServer,
) -> None:
    spec = {"kind": "plugin", "object": "tests.agents:ScriptedAgent"}
    stub = await start_server(agents={"scripted": spec}, max_state_bytes=16)
    session = await create(stub, agent_id="scripted")

    error = await rpc_error(run(stub, session, "a message that the agent records in its state"))

    assert (error.code(), error_info(error).reason) == (StatusCode.INTERNAL, "AGENT_FAILED")
    got = await stub.GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id=session.user_id)
    )
    assert (got.state_json, got.turn_count) == ("", 0)
