"""Many devices, one conversation: WatchSession, detached runs and ResumeRun over gRPC,
with two replicas on one store (memory: two servers sharing one store in this process;
Redis and the cluster: two servers on the same keys)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb

from agent_sessions.agents import AgentContext, AgentEvent
from agent_sessions.server import SessionServer
from agent_sessions.store import SessionStore
from agent_sessions.store.memory import MemorySessionStore
from agent_sessions.store.redis import RedisSessionStore
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, reply_of, rpc_error, run, turns

TIMEOUT_S = 10.0
FULL_REPLY = "one two three four"


class GatedAgent:
    """Says half its reply, waits for ``release``, then says the rest; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        self.calls += 1
        if text == "long":
            for i in range(2000):
                yield f"word{i} "
            return
        yield "one "
        yield "two "
        self.started.set()
        await self.release.wait()
        yield "three "
        yield "four"


@pytest.fixture
def agent() -> GatedAgent:
    return GatedAgent()


@pytest.fixture
async def direct(store_url: str, key_prefix: str) -> AsyncIterator[SessionStore]:
    """The replicas' store, to write to as a server that dies would have."""
    if store_url == "memory://":
        yield MemorySessionStore()
        return
    store = RedisSessionStore.from_url(store_url, prefix=key_prefix)
    yield store
    await store.close()


@asynccontextmanager
async def two_replicas(
    store_url: str, key_prefix: str, agent: GatedAgent, direct: SessionStore, publish_delay: str
) -> AsyncIterator[tuple[Stub, Stub]]:
    # The memory store lives in one process: its replicas share it.
    shared = direct if store_url == "memory://" else None
    servers = [
        SessionServer(
            server_settings(store_url, key_prefix, publish_delay=publish_delay),
            agents={"gated": agent},
            store=shared,
        )
        for _ in range(2)
    ]
    channels = []
    try:
        for server in servers:
            await server.start()
            channels.append(grpc.aio.insecure_channel(server.address))
        yield Stub(channels[0]), Stub(channels[1])
    finally:
        for channel in channels:
            await channel.close(None)
        for server in servers:
            await server.stop(0)


@pytest.fixture
async def replicas(
    store_url: str, key_prefix: str, agent: GatedAgent, direct: SessionStore
) -> AsyncIterator[tuple[Stub, Stub]]:
    async with two_replicas(store_url, key_prefix, agent, direct, "20ms") as stubs:
        yield stubs


def ids(session: pb.Session) -> dict[str, Any]:
    return {"session_id": session.session_id, "user_id": session.user_id}


def kind(event: pb.SessionEvent) -> str:
    return event.WhichOneof("event") or ""


async def watch_until(
    stub: Stub, session: pb.Session, stop: str, after: int | None = 0
) -> list[pb.SessionEvent]:
    """The events a watcher reads, up to and including the first of kind ``stop``."""
    request = pb.WatchSessionRequest(**ids(session))
    if after is not None:
        request.after_sequence = after
    seen = []
    async with asyncio.timeout(TIMEOUT_S):
        async for event in stub.WatchSession(request):
            seen.append(event)
            if kind(event) == stop:
                break
    return seen


def deltas(events: list[Any]) -> str:
    return "".join(e.delta.text for e in events if e.WhichOneof("event") == "delta")


async def test_two_watchers_on_different_replicas_see_the_same_ordered_events(
    replicas: tuple[Stub, Stub],
) -> None:
    a, b = replicas
    session = await create(a)
    watchers = [asyncio.create_task(watch_until(stub, session, "deleted")) for stub in (a, b)]

    await run(a, session, "How's the weather in Shanghai?")
    await run(b, session, "What about Beijing?")
    await b.EndSession(pb.EndSessionRequest(**ids(session)))
    await a.DeleteSession(pb.DeleteSessionRequest(**ids(session)))
    on_a, on_b = await asyncio.gather(*watchers)

    assert [(e.sequence, kind(e)) for e in on_a] == [(e.sequence, kind(e)) for e in on_b]
    assert [e.sequence for e in on_a] == list(range(1, len(on_a) + 1))
    kinds = [kind(e) for e in on_a if kind(e) != "delta"]
    assert kinds == [
        "run_started",
        "turn_committed",
        "run_started",
        "turn_committed",
        "ended",
        "deleted",
    ]
    committed = [e.turn_committed for e in on_a if kind(e) == "turn_committed"]
    assert [c.turn.index for c in committed] == [1, 2]
    assert deltas(on_a) == committed[0].turn.output + committed[1].turn.output


async def test_a_watcher_that_reconnects_mid_run_receives_every_delta_exactly_once(
    replicas: tuple[Stub, Stub], agent: GatedAgent
) -> None:
    a, b = replicas
    session = await create(a, agent_id="gated")
    running = asyncio.create_task(run(a, session, "hello"))
    first_part = []
    async with asyncio.timeout(TIMEOUT_S):
        async for event in a.WatchSession(pb.WatchSessionRequest(**ids(session), after_sequence=0)):
            first_part.append(event)
            if deltas(first_part) == "one two ":
                break  # the connection drops here

    agent.release.set()
    rest = await watch_until(b, session, "turn_committed", after=first_part[-1].sequence)
    await running

    assert deltas(first_part) + deltas(rest) == FULL_REPLY
    assert rest[-1].turn_committed.turn.output == FULL_REPLY
    assert agent.calls == 1


async def test_a_watched_run_publishes_its_deltas_at_once_whatever_the_publish_delay(
    store_url: str, key_prefix: str, agent: GatedAgent, direct: SessionStore
) -> None:
    async with two_replicas(store_url, key_prefix, agent, direct, "1h") as (a, b):
        session = await create(a, agent_id="gated")
        seen: list[pb.SessionEvent] = []

        async def watcher() -> None:
            request = pb.WatchSessionRequest(**ids(session), after_sequence=0)
            async for event in b.WatchSession(request):
                seen.append(event)
                if deltas(seen) == "one two ":
                    return

        watching = asyncio.create_task(watcher())
        await asyncio.sleep(0.5)  # the watcher is there before the run begins
        running = asyncio.create_task(run(a, session, "hello"))
        await asyncio.wait_for(watching, TIMEOUT_S)  # before the agent's end, an hour early
        agent.release.set()
        await running

    assert deltas(seen) == "one two "


async def test_a_detached_run_resumes_on_another_replica_with_the_whole_reply_and_one_turn(
    replicas: tuple[Stub, Stub], agent: GatedAgent
) -> None:
    a, b = replicas
    session = await create(a, agent_id="gated")
    call = a.Run(pb.RunRequest(**ids(session), input="hello", request_id="r-1", detach=True))
    received = []
    async with asyncio.timeout(TIMEOUT_S):
        async for event in call:
            received.append(event)
            if deltas(received) == "one two ":
                break
    call.cancel()  # the caller goes away mid-reply
    started = received[0].started

    agent.release.set()
    resumed = [
        event
        async for event in b.ResumeRun(
            pb.ResumeRunRequest(
                **ids(session), run_id=started.run_id, after_sequence=received[-1].sequence
            )
        )
    ]
    history = await turns(b, session)

    assert started.run_id and received[0].sequence > 0
    assert deltas(received) + deltas(resumed) == FULL_REPLY
    assert resumed[-1].completed.turn.output == FULL_REPLY
    assert [(t.index, t.status) for t in history] == [(1, pb.TURN_STATUS_COMPLETED)]
    assert agent.calls == 1


async def test_a_run_resumes_by_its_request_id_from_its_start(
    replicas: tuple[Stub, Stub], agent: GatedAgent
) -> None:
    a, b = replicas
    session = await create(a, agent_id="gated")
    agent.release.set()
    await run(a, session, "hello", request_id="r-1", detach=True)

    resumed = [
        event async for event in b.ResumeRun(pb.ResumeRunRequest(**ids(session), request_id="r-1"))
    ]

    assert resumed[0].WhichOneof("event") == "started"
    assert reply_of(resumed) == FULL_REPLY
    assert resumed[-1].completed.turn.index == 1


async def test_a_retry_with_the_request_id_of_a_running_detached_run_attaches_to_it(
    replicas: tuple[Stub, Stub], agent: GatedAgent
) -> None:
    a, b = replicas
    session = await create(a, agent_id="gated")
    first = asyncio.create_task(run(a, session, "hello", request_id="r-1", detach=True))
    await asyncio.wait_for(agent.started.wait(), TIMEOUT_S)

    retry = asyncio.create_task(run(b, session, "hello", request_id="r-1", detach=True))
    await asyncio.sleep(0.2)  # the retry is attached and waiting
    agent.release.set()
    original, retried = await asyncio.gather(first, retry)
    history = await turns(a, session)

    assert reply_of(original) == reply_of(retried) == FULL_REPLY
    assert retried[0].started.run_id == original[0].started.run_id
    assert [t.index for t in history] == [1]
    assert agent.calls == 1


async def test_a_watcher_that_never_reads_does_not_hold_up_the_run(
    replicas: tuple[Stub, Stub], agent: GatedAgent
) -> None:
    a, b = replicas
    session = await create(a, agent_id="gated")
    # Opened, and never read from while the run goes.
    stalled = b.WatchSession(pb.WatchSessionRequest(**ids(session), after_sequence=0))

    async with asyncio.timeout(TIMEOUT_S):
        events = await run(a, session, "long")  # 2,000 deltas, ~20 KB
    reply = reply_of(events)
    late = await watch_until(b, session, "turn_committed")
    stalled.cancel()

    assert reply.startswith("word0 word1 ") and reply.endswith("word1999 ")
    assert deltas(late) == reply  # a reader that comes late still finds it all


async def test_following_a_run_whose_server_died_ends_when_its_lease_runs_out(
    replicas: tuple[Stub, Stub], direct: SessionStore
) -> None:
    a, _ = replicas
    session = await create(a, agent_id="gated")
    # A turn begun by a server that died at once: nothing renews its lease.
    await direct.begin_turn(
        user_id=session.user_id,
        session_id=session.session_id,
        text="hello",
        request_id="r-1",
        run_id="0123456789abcdef",
        lease_ms=100,
        history_turns=0,
        now_ms=time.time_ns() // 1_000_000,
    )

    error = await rpc_error(
        run_events(a.ResumeRun(pb.ResumeRunRequest(**ids(session), request_id="r-1")))
    )

    assert error.code() == grpc.StatusCode.ABORTED
    assert "ABANDONED" in (error.details() or "")


async def test_a_watcher_of_another_users_session_is_not_found(
    replicas: tuple[Stub, Stub],
) -> None:
    a, _ = replicas
    session = await create(a, user_id="alice")

    error = await rpc_error(
        watch_until(a, pb.Session(session_id=session.session_id, user_id="mallory"), "deleted")
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_resuming_a_run_the_log_never_held_is_not_found(
    replicas: tuple[Stub, Stub],
) -> None:
    a, _ = replicas
    session = await create(a)

    error = await rpc_error(
        run_events(a.ResumeRun(pb.ResumeRunRequest(**ids(session), run_id="0123456789abcdef")))
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "ListTurns" in (error.details() or "")


async def test_resuming_without_naming_a_run_is_invalid(replicas: tuple[Stub, Stub]) -> None:
    a, _ = replicas
    session = await create(a)

    error = await rpc_error(run_events(a.ResumeRun(pb.ResumeRunRequest(**ids(session)))))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_watch_from_a_negative_sequence_is_invalid(replicas: tuple[Stub, Stub]) -> None:
    a, _ = replicas
    session = await create(a)

    error = await rpc_error(watch_until(a, session, "deleted", after=-1))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def run_events(call: Any) -> list[Any]:
    return [event async for event in call]
