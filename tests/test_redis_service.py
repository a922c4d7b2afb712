"""The service on Redis: replicas share sessions, and a Redis outage is survived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from agentsessions.sessions.v1 import sessions_pb2_grpc
from grpc import StatusCode
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent_sessions.server import SessionServer
from launchers.redis_server import RedisServer
from tests.agents import ScriptedAgent
from tests.clock import ManualClock
from tests.conftest import server_settings
from tests.grpc_helpers import create, error_info, reply_of, rpc_error, run, turns

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, persisted to disk so that a restart keeps the data."""
    server = RedisServer(append_only=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_backed(private_redis: RedisServer, key_prefix: str) -> AsyncIterator[SessionServer]:
    running = SessionServer(server_settings(private_redis.url, key_prefix))
    await running.start()
    yield running
    await running.stop(0)


async def health_becomes(address: str, wanted: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(100):
            answer = await health.Check(
                health_pb2.HealthCheckRequest(service="agentsessions.sessions.v1.SessionService")
            )
            if answer.status == wanted:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"health never became {wanted}")


async def test_while_redis_is_down_calls_are_unavailable_and_health_is_not_serving(
    redis_backed: SessionServer, private_redis: RedisServer
) -> None:
    async with grpc.aio.insecure_channel(redis_backed.address) as channel:
        stub = sessions_pb2_grpc.SessionServiceStub(channel)
        session = await create(stub)

        private_redis.stop()

        await health_becomes(redis_backed.address, NOT_SERVING)
        get_error = await rpc_error(
            stub.GetSession(pb.GetSessionRequest(session_id=session.session_id, user_id="user-1"))
        )
        run_error = await rpc_error(run(stub, session, "anyone?"))
        assert get_error.code() == run_error.code() == StatusCode.UNAVAILABLE
        assert error_info(get_error).reason == "STORE_UNAVAILABLE"


async def test_the_server_recovers_by_itself_when_redis_is_back(
    redis_backed: SessionServer, private_redis: RedisServer
) -> None:
    async with grpc.aio.insecure_channel(redis_backed.address) as channel:
        stub = sessions_pb2_grpc.SessionServiceStub(channel)
        session = await create(stub)
        await run(stub, session, "before the outage")
        private_redis.stop()
        await health_becomes(redis_backed.address, NOT_SERVING)

        private_redis.start()

        await health_becomes(redis_backed.address, SERVING)
        events = await run(stub, session, "after the outage")
        assert reply_of(events).startswith("Echo (turn 2)")
        assert [t.input for t in await turns(stub, session)] == [
            "before the outage",
            "after the outage",
        ]


async def test_a_session_created_on_one_replica_is_resumed_on_another(
    redis_server: RedisServer, key_prefix: str
) -> None:
    first = SessionServer(server_settings(redis_server.url, key_prefix))
    second = SessionServer(server_settings(redis_server.url, key_prefix))
    await first.start()
    await second.start()
    try:
        async with (
            grpc.aio.insecure_channel(first.address) as one,
            grpc.aio.insecure_channel(second.address) as other,
        ):
            on_first = sessions_pb2_grpc.SessionServiceStub(one)
            on_second = sessions_pb2_grpc.SessionServiceStub(other)
            session = await create(on_first)
            await run(on_first, session, "How's the weather in Shanghai?")

            events = await run(on_second, session, "What about Beijing?")

        assert 'previous: "How\'s the weather in Shanghai?"' in reply_of(events)
    finally:
        await first.stop(0)
        await second.stop(0)


async def test_redis_stopping_during_a_run_keeps_the_input_and_frees_the_session_later(
    private_redis: RedisServer, key_prefix: str, scripted_agent: ScriptedAgent
) -> None:
    clock = ManualClock()
    settings = server_settings(private_redis.url, key_prefix, turn_lease=timedelta(seconds=1))
    server = SessionServer(settings, agents={"scripted": scripted_agent}, clock=clock)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = sessions_pb2_grpc.SessionServiceStub(channel)
            session = await create(stub, agent_id="scripted")
            running = asyncio.ensure_future(run(stub, session, "wait"))
            await scripted_agent.started.wait()

            private_redis.stop()
            scripted_agent.release.set()
            error = await rpc_error(running)
            # The run tries to commit its reply for one lease (a second here), then
            # leaves the turn to its lease: Redis stays down longer than that.
            await asyncio.sleep(1.5)
            private_redis.start()
            await health_becomes(server.address, SERVING)
            clock.advance(settings.turn_lease)  # the unrecorded turn's lease runs out

            events = await run(stub, session, "after the outage")
            history = await turns(stub, session)

        assert error.code() == StatusCode.UNAVAILABLE
        assert events[-1].completed.turn.index == 2
        assert [(t.status, t.input) for t in history] == [
            (pb.TURN_STATUS_FAILED, "wait"),
            (pb.TURN_STATUS_COMPLETED, "after the outage"),
        ]
    finally:
        await server.stop(0)
