"""An agent behind agentsessions.agents.v1.AgentService, end to end over real gRPC on both stores.

The agent service is the example server of clients/python/examples/agent_server.py,
in this process on a free port; a session server reaches it through an agents-table
entry of kind "grpc", exactly as a deployment would configure it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from agentsessions.agents.v1 import agents_pb2, agents_pb2_grpc
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from agent_sessions.server import SessionServer
from launchers.redis_server import free_port
from tests.conftest import server_settings
from tests.grpc_helpers import (
    Stub,
    create,
    error_info,
    reply_of,
    rpc_error,
    run,
    state_of,
    turns,
)

# The example is a script, not a package: it is imported from its directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients" / "python" / "examples"))
from agent_server import WeatherAgentService, start_server  # type: ignore[import-not-found]

AGENT = "remote-weather"
QUICK_AGENT = "remote-weather-quick"  # the same service with a 0.5 s timeout
# The agents are under test here, not the stores: memory and Redis suffice.
SKIP_CLUSTER = True


@dataclass
class AgentService:
    """The example agent service: what it received and cancelled, and where it listens."""

    service: Any  # WeatherAgentService
    address: str


@pytest.fixture
async def agent_service() -> AsyncIterator[AgentService]:
    service = WeatherAgentService()
    server, port = await start_server("127.0.0.1:0", service)
    yield AgentService(service, f"127.0.0.1:{port}")
    await server.stop(0)


@asynccontextmanager
async def session_server(
    store_url: str, key_prefix: str, target: str, **agent_options: object
) -> AsyncIterator[Stub]:
    """A session server whose agents AGENT and QUICK_AGENT are the agent service at target."""
    agents = {
        AGENT: {"kind": "grpc", "target": target, **agent_options},
        QUICK_AGENT: {"kind": "grpc", "target": target, "timeout": 0.5},
    }
    server = SessionServer(server_settings(store_url, key_prefix, agents=agents))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield Stub(channel)
    finally:
        await server.stop(0)


@pytest.fixture
async def sessions(
    store_url: str, key_prefix: str, agent_service: AgentService
) -> AsyncIterator[Stub]:
    async with session_server(store_url, key_prefix, agent_service.address) as stub:
        yield stub


async def get_session(stub: Stub, session: pb.Session) -> pb.Session:
    got: pb.Session = await stub.GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id=session.user_id)
    )
    return got


async def eventually(condition: Callable[[], Awaitable[bool]], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not await condition():
        assert time.monotonic() < deadline, f"not true within {within_s} s"
        await asyncio.sleep(0.01)


async def test_the_weather_conversation_follows_the_context_and_commits_the_agents_state(
    sessions: Stub,
) -> None:
    session = await create(sessions, agent_id=AGENT)

    first = await run(sessions, session, "How's the weather in Shanghai?")
    second = await run(sessions, session, "What about Beijing?")

    assert reply_of(first) == "Shanghai is sunny today, 22°C."
    assert reply_of(second) == "Beijing is cloudy today, 18°C."
    assert sum(event.WhichOneof("event") == "delta" for event in second) > 1
    completed = second[-1].completed
    assert (completed.turn.index, completed.turn.status) == (2, pb.TURN_STATUS_COMPLETED)
    assert (completed.turn.usage.input_tokens, completed.turn.usage.output_tokens) == (3, 5)
    stored = await get_session(sessions, session)
    assert state_of(stored) == {"topic": "weather", "city": "Beijing"}
    assert stored.turn_count == 2
    [_, turn] = await turns(sessions, session)
    assert (turn.output, turn.usage.output_tokens) == ("Beijing is cloudy today, 18°C.", 5)


async def test_the_session_context_reaches_the_agent(
    sessions: Stub, agent_service: AgentService
) -> None:
    # An imported session is the one way to give a session a summary.
    session: pb.Session = await sessions.ImportSession(
        pb.ImportSessionRequest(
            snapshot=pb.SessionSnapshot(
                session_id="imported-1",
                user_id="user-1",
                agent_id=AGENT,
                summary="The user lives in Shanghai.",
                turns=[
                    pb.Turn(
                        index=1,
                        status=pb.TURN_STATUS_COMPLETED,
                        input="Hello",
                        output="I can tell you the weather in Shanghai, Beijing or Tokyo.",
                    ),
                    pb.Turn(index=2, status=pb.TURN_STATUS_FAILED, input="fail"),
                ],
            )
        )
    )
    await run(sessions, session, "How's the weather in Tokyo?")

    await run(sessions, session, "What about Beijing?")

    request = agent_service.service.received[-1]
    assert (request.session_id, request.user_id, request.agent_id) == (
        "imported-1",
        "user-1",
        AGENT,
    )
    assert (request.turn_index, request.input) == (4, "What about Beijing?")
    assert request.summary == "The user lives in Shanghai."
    assert json.loads(request.state_json) == {"topic": "weather", "city": "Tokyo"}
    # Completed turns only, oldest first: the failed turn 2 is left out.
    assert [(e.index, e.input, e.output) for e in request.history] == [
        (1, "Hello", "I can tell you the weather in Shanghai, Beijing or Tokyo."),
        (3, "How's the weather in Tokyo?", "Tokyo is rainy today, 16°C."),
    ]


async def test_cancelling_a_run_cancels_the_agent_call_and_records_the_turn_cancelled(
    sessions: Stub, agent_service: AgentService
) -> None:
    session = await create(sessions, agent_id=AGENT)
    call = sessions.Run(
        pb.RunRequest(session_id=session.session_id, user_id="user-1", input="slow")
    )
    events = aiter(call)
    assert (await anext(events)).WhichOneof("event") == "started"
    assert (await anext(events)).delta.text  # the agent service is streaming

    call.cancel()
    cancelled_at = time.monotonic()

    async def agent_saw_it() -> bool:
        return bool(agent_service.service.cancelled)

    await eventually(agent_saw_it, within_s=1.0)
    assert time.monotonic() - cancelled_at < 1.0
    assert agent_service.service.cancelled[0].input == "slow"

    async def turn_ended() -> bool:
        [turn] = await turns(sessions, session)
        return turn.status != pb.TURN_STATUS_IN_PROGRESS

    await eventually(turn_ended, within_s=2.0)
    [turn] = await turns(sessions, session)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_CANCELLED, "slow", "")


async def test_an_agent_error_fails_the_turn_with_the_agents_message(sessions: Stub) -> None:
    session = await create(sessions, agent_id=AGENT)
    await run(sessions, session, "How's the weather in Shanghai?")

    error = await rpc_error(run(sessions, session, "fail"))

    assert error.code() == StatusCode.INTERNAL
    assert error_info(error).reason == "AGENT_FAILED"
    assert "the weather service is down" in (error.details() or "")  # the agent's own words
    [_, turn] = await turns(sessions, session)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_FAILED, "fail", "")
    assert "INTERNAL: the weather service is down" in turn.error
    stored = await get_session(sessions, session)
    assert (stored.turn_count, state_of(stored)) == (
        1,
        {"topic": "weather", "city": "Shanghai"},
    )
    events = await run(sessions, session, "What about Beijing?")
    assert reply_of(events) == "Beijing is cloudy today, 18°C."
    assert events[-1].completed.turn.index == 3


async def test_an_unreachable_agent_service_is_unavailable_and_fails_the_turn(
    store_url: str, key_prefix: str
) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there yet
    async with session_server(store_url, key_prefix, address) as sessions:
        session = await create(sessions, agent_id=AGENT)

        question = "How's the weather in Shanghai?"
        error = await rpc_error(run(sessions, session, question))

        assert error.code() == StatusCode.UNAVAILABLE
        assert error_info(error).reason == "AGENT_UNAVAILABLE"
        assert address in (error.details() or "")  # where the agent service was looked for
        [turn] = await turns(sessions, session)
        assert (turn.status, turn.input) == (pb.TURN_STATUS_FAILED, question)
        assert "UNAVAILABLE" in turn.error

        # Once the agent service is up, a retry works, as UNAVAILABLE promises. The
        # channel may still be waiting to reconnect (about a second), so the test
        # retries like a client would, and each attempt that was refused is kept FAILED.
        server, _ = await start_server(address, WeatherAgentService())
        try:
            events: list[pb.RunEvent] = []

            async def a_retry_succeeded() -> bool:
                nonlocal events
                try:
                    events = await run(sessions, session, question)
                except grpc.aio.AioRpcError as retry_error:
                    assert retry_error.code() == StatusCode.UNAVAILABLE
                    await asyncio.sleep(0.1)
                    return False
                return True

            await eventually(a_retry_succeeded, within_s=5.0)
        finally:
            await server.stop(0)
        assert reply_of(events) == "Shanghai is sunny today, 22°C."
        *refused, completed = await turns(sessions, session)
        assert {t.status for t in refused} == {pb.TURN_STATUS_FAILED}
        assert completed.status == pb.TURN_STATUS_COMPLETED


async def test_the_agents_timeout_is_deadline_exceeded_and_fails_the_turn(
    sessions: Stub, agent_service: AgentService
) -> None:
    session = await create(sessions, agent_id=QUICK_AGENT)
    started = time.monotonic()

    error = await rpc_error(run(sessions, session, "slow"))

    assert error.code() == StatusCode.DEADLINE_EXCEEDED
    assert error_info(error).reason == "RUN_TIMED_OUT"
    assert 0.5 <= time.monotonic() - started < 2.0
    [turn] = await turns(sessions, session)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_FAILED, "slow", "")

    async def agent_saw_it() -> bool:
        return bool(agent_service.service.cancelled)

    await eventually(agent_saw_it, within_s=1.0)


async def compress_all(stub: Stub, session: pb.Session) -> pb.CompressSessionResponse:
    response: pb.CompressSessionResponse = await stub.CompressSession(
        pb.CompressSessionRequest(
            session_id=session.session_id, user_id=session.user_id, keep_last=0
        )
    )
    return response


async def test_the_agent_service_writes_the_summary_when_a_session_is_compressed(
    sessions: Stub,
) -> None:
    session = await create(sessions, agent_id=AGENT)
    await run(sessions, session, "How's the weather in Shanghai?")
    await run(sessions, session, "What about Beijing?")

    response = await compress_all(sessions, session)

    assert response.summarizer == "agent"
    assert response.session.summary == (
        "Turns 1-2: the user asked about the weather in Shanghai, Beijing."
    )


class GenerateOnly(agents_pb2_grpc.AgentServiceServicer):
    """An agent service built before Summarize existed: it answers UNIMPLEMENTED."""

    async def Generate(
        self, request: agents_pb2.GenerateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[agents_pb2.GenerateResponse]:
        yield agents_pb2.GenerateResponse(text=agents_pb2.TextDelta(text="ok"))

    async def Summarize(
        self, request: agents_pb2.SummarizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> agents_pb2.SummarizeResponse:
        # What the generated base class of an older agents.proto answers.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        raise AssertionError("abort raises")


async def test_an_agent_service_without_summarize_gets_the_extractive_summary(
    store_url: str, key_prefix: str
) -> None:
    server, port = await start_server("127.0.0.1:0", GenerateOnly())
    try:
        async with session_server(store_url, key_prefix, f"127.0.0.1:{port}") as stub:
            session = await create(stub, agent_id=AGENT)
            await run(stub, session, "Hello there.")

            response = await compress_all(stub, session)
    finally:
        await server.stop(0)

    assert response.summarizer == "extractive"
    assert response.session.summary == "Turn 1: user: Hello there. | agent: ok"


async def test_a_remote_agents_tool_call_is_stored_and_sent_back_in_its_context(
    sessions: Stub, agent_service: AgentService
) -> None:
    session = await create(sessions, agent_id=AGENT)
    await run(sessions, session, "How's the weather in Tokyo?")

    await run(sessions, session, "And in Beijing?")
    listed = await sessions.ListItems(
        pb.ListItemsRequest(session_id=session.session_id, user_id=session.user_id)
    )

    first_turn = [i for i in listed.items if i.turn_index == 1]
    assert [(i.type, i.name) for i in first_turn] == [
        (pb.ITEM_TYPE_MESSAGE, ""),
        (pb.ITEM_TYPE_TOOL_CALL, "get_weather"),
        (pb.ITEM_TYPE_TOOL_RESULT, "get_weather"),
        (pb.ITEM_TYPE_MESSAGE, ""),
    ]
    [earlier] = agent_service.service.received[-1].history
    assert list(earlier.items) == first_turn
