"""Guarantees under concurrency and faults: no turn lost, none duplicated, none half-written.

Each test counts what it tried and injected, and asserts zero lost and zero duplicated
turns (`pytest -s` prints the counts).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from agent_sessions.server import SessionServer
from launchers.redis_server import RedisServer, free_port
from tests.agents import ScriptedAgent
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, reply_of, rpc_error, run, serving, turns

SESSION_SERVER = str(Path(sys.executable).parent / "session-server")
ROOT = Path(__file__).resolve().parent.parent


async def all_turns(stub: Stub, session: pb.Session) -> list[pb.Turn]:
    found: list[pb.Turn] = []
    token = ""
    while True:
        page = await stub.ListTurns(
            pb.ListTurnsRequest(
                session_id=session.session_id, user_id=session.user_id, page_token=token
            )
        )
        found += page.turns
        token = page.next_page_token
        if not token:
            return found


async def test_concurrent_runs_on_one_session_from_two_replicas_never_interleave(
    redis_server: RedisServer, key_prefix: str
) -> None:
    replicas = [SessionServer(server_settings(redis_server.url, key_prefix)) for _ in range(2)]
    for replica in replicas:
        await replica.start()
    try:
        channels = [grpc.aio.insecure_channel(r.address) for r in replicas]
        stubs = [Stub(c) for c in channels]
        session = await create(stubs[0])

        async def attempt(i: int) -> str | None:
            try:
                await run(stubs[i % 2], session, f"input {i}")
            except grpc.aio.AioRpcError as error:
                assert error.code() == StatusCode.ABORTED, error
                return None
            return f"input {i}"

        outcomes = await asyncio.gather(*(attempt(i) for i in range(50)))
        stored = await all_turns(stubs[1], session)
        for channel in channels:
            await channel.close(None)
    finally:
        for replica in replicas:
            await replica.stop(0)

    accepted = [o for o in outcomes if o is not None]
    print(f"\n50 concurrent runs: {len(accepted)} accepted, {50 - len(accepted)} aborted")
    assert accepted
    assert [t.index for t in stored] == list(range(1, len(stored) + 1))
    assert all(t.status == pb.TURN_STATUS_COMPLETED for t in stored)
    assert Counter(t.input for t in stored) == Counter(accepted)


@pytest.fixture
def durable_redis() -> Iterator[RedisServer]:
    """A Redis that fsyncs every write (AOF), so a crash loses nothing it acknowledged."""
    server = RedisServer(append_only=True)
    server.start()
    yield server
    server.stop()


async def test_killing_redis_under_load_loses_and_duplicates_no_turn(
    durable_redis: RedisServer, key_prefix: str
) -> None:
    settings = server_settings(durable_redis.url, key_prefix, run_timeout=timedelta(seconds=1))
    server = SessionServer(settings)
    await server.start()
    acknowledged: dict[str, dict[str, str]] = {}  # session -> request id -> reply
    counts: Counter[str] = Counter()
    stop = asyncio.Event()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            sessions = [await create(stub, user_id=f"load-{i}") for i in range(8)]

            async def worker(session: pb.Session) -> None:
                done = acknowledged.setdefault(session.session_id, {})
                number = 0
                while not stop.is_set():
                    number += 1
                    request_id = f"{session.session_id}-{number}"
                    while True:  # retry the same request id until it is acknowledged
                        counts["runs tried"] += 1
                        try:
                            events = await run(
                                stub, session, f"turn {number}", request_id=request_id
                            )
                        except grpc.aio.AioRpcError as error:
                            assert error.code() in (
                                StatusCode.UNAVAILABLE,
                                StatusCode.ABORTED,
                            ), error
                            counts[error.code().name] += 1
                            await asyncio.sleep(0.1)
                            continue
                        done[request_id] = events[-1].completed.turn.output
                        break

            workers = [asyncio.create_task(worker(s)) for s in sessions]
            for _ in range(2):
                await asyncio.sleep(0.5)
                durable_redis.kill()
                counts["faults injected"] += 1
                await asyncio.sleep(0.3)
                durable_redis.start()
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*workers), timeout=30)

            lost = duplicated = 0
            for session in sessions:
                stored = await all_turns(stub, session)
                completed = [t for t in stored if t.status == pb.TURN_STATUS_COMPLETED]
                by_request = Counter(t.request_id for t in completed)
                duplicated += sum(n - 1 for n in by_request.values() if n > 1)
                outputs = {t.request_id: t.output for t in completed}
                for request_id, reply in acknowledged[session.session_id].items():
                    lost += outputs.get(request_id) != reply
                assert [t.index for t in stored] == list(range(1, len(stored) + 1))
                assert all(t.output == "" for t in stored if t.status != pb.TURN_STATUS_COMPLETED)
    finally:
        await server.stop(0)

    acknowledged_runs = sum(len(v) for v in acknowledged.values())
    print(
        f"\n{dict(counts)}; acknowledged {acknowledged_runs}; lost {lost}; duplicated {duplicated}"
    )
    assert counts["faults injected"] == 2
    assert acknowledged_runs > 0
    assert counts["UNAVAILABLE"] > 0  # the clients did see the outage
    assert (lost, duplicated) == (0, 0)


async def test_a_server_killed_mid_run_frees_its_session_within_a_lease(
    redis_server: RedisServer, key_prefix: str
) -> None:
    """With the default run timeout (5 minutes) and the default lease (10 s, renewed by
    the running server's heartbeat), a turn whose server died is freed in seconds."""
    address = f"127.0.0.1:{free_port()}"
    agents = json.dumps({"scripted": {"kind": "plugin", "object": "tests.agents:ScriptedAgent"}})
    command = [
        SESSION_SERVER,
        "--address",
        address,
        "--store",
        redis_server.url,
        "--key-prefix",
        key_prefix,
        "--agents",
        agents,
        "--default-agent",
        "echo",
        "--log-level",
        "WARNING",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    doomed = await asyncio.create_subprocess_exec(*command, env=env)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = Stub(channel)
            await channel.channel_ready()
            session = await create(stub, agent_id="scripted", user_id=f"u-{uuid.uuid4().hex[:6]}")
            call = stub.Run(
                pb.RunRequest(session_id=session.session_id, user_id=session.user_id, input="hang")
            )
            stream = aiter(call)
            assert (await anext(stream)).WhichOneof("event") == "started"
            assert (await anext(stream)).delta.text == "thinking"

            await asyncio.sleep(4)  # past the first heartbeats: the lease was renewed
            doomed.send_signal(signal.SIGKILL)
            await doomed.wait()
            killed_at = time.monotonic()
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()

    fresh = SessionServer(server_settings(redis_server.url, key_prefix))
    await fresh.start()
    try:
        async with grpc.aio.insecure_channel(fresh.address) as channel:
            stub = Stub(channel)
            [abandoned] = await turns(stub, session)
            refused = 0
            while True:  # what a user's client does: retry while the turn is held
                try:
                    events = await run(stub, session, "are you back?")
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() == StatusCode.ABORTED  # TURN_IN_PROGRESS
                    refused += 1
                    await asyncio.sleep(0.2)
            freed_after_s = time.monotonic() - killed_at
            history = await turns(stub, session)
    finally:
        await fresh.stop(0)

    print(f"\nsession freed {freed_after_s:.1f} s after SIGKILL ({refused} runs refused)")
    assert refused > 0  # the lease did hold the session for a while
    assert freed_after_s <= 15
    assert (abandoned.status, abandoned.input) == (pb.TURN_STATUS_IN_PROGRESS, "hang")
    # The fresh server has no "scripted" agent: its default, echo, answers.
    assert reply_of(events) == "Echo (turn 2): are you back?"
    assert [(t.status, t.input, t.output) for t in history] == [
        (pb.TURN_STATUS_FAILED, "hang", ""),
        (pb.TURN_STATUS_COMPLETED, "are you back?", "Echo (turn 2): are you back?"),
    ]
    assert "lease" in history[0].error


async def test_a_retry_after_a_deadline_completes_the_turn_once(
    stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    session = await create(stub, agent_id="scripted")
    request = pb.RunRequest(
        session_id=session.session_id, user_id=session.user_id, input="pause", request_id="r-1"
    )

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in stub.Run(request, timeout=0.2):
            pass
    for _ in range(50):  # the server records the cut-off turn as soon as it learns of it
        if (await turns(stub, session))[0].status != pb.TURN_STATUS_IN_PROGRESS:
            break
        await asyncio.sleep(0.02)
    retried = [event async for event in stub.Run(request)]
    again = [event async for event in stub.Run(request)]
    history = await turns(stub, session)

    assert raised.value.code() == StatusCode.DEADLINE_EXCEEDED
    # The deadline cancelled the first agent call: its turn keeps the input, no reply.
    assert [(t.status, t.request_id) for t in history] == [
        (pb.TURN_STATUS_CANCELLED, "r-1"),
        (pb.TURN_STATUS_COMPLETED, "r-1"),
    ]
    # Once completed, the request id replays: no second completed turn, no agent call.
    assert again[0].started.replayed
    assert reply_of(again) == reply_of(retried) == "first half, second half"


async def test_a_run_longer_than_its_lease_keeps_its_turn_by_heartbeat(
    store_url: str, key_prefix: str
) -> None:
    agent = ScriptedAgent(pause_s=1.0)  # "pause" takes a second: three leases of 300 ms
    settings = server_settings(store_url, key_prefix, turn_lease=timedelta(milliseconds=300))
    async with serving(settings, agents={"scripted": agent}) as (_, stub):
        session = await create(stub, agent_id="scripted")
        first = asyncio.ensure_future(run(stub, session, "pause"))
        await agent.started.wait()
        await asyncio.sleep(0.6)  # twice the lease: only the heartbeat still holds the turn

        second = await rpc_error(run(stub, session, "me too"))
        events = await first

    assert second.code() == StatusCode.ABORTED  # TURN_IN_PROGRESS, not a take-over
    assert events[-1].completed.turn.output == "first half, second half"


async def test_a_reply_whose_commit_found_redis_down_is_committed_once_it_is_back(
    durable_redis: RedisServer, key_prefix: str
) -> None:
    agent = ScriptedAgent(pause_s=1.0)
    settings = server_settings(durable_redis.url, key_prefix)
    async with serving(settings, {"scripted": agent}) as (_, stub):
        session = await create(stub, agent_id="scripted")
        running = asyncio.create_task(run(stub, session, "pause", request_id="r-1"))
        await agent.started.wait()
        durable_redis.kill()  # the agent is mid-reply; its commit will find no Redis

        error = await rpc_error(running)
        durable_redis.start()  # with every write it acknowledged (AOF, fsync always)
        for _ in range(100):
            [turn] = await turns(stub, session)
            if turn.status != pb.TURN_STATUS_IN_PROGRESS:
                break
            await asyncio.sleep(0.05)
        retried = await run(stub, session, "pause", request_id="r-1")

    assert error.code() == StatusCode.UNAVAILABLE
    # Committed by the run that wrote it, within its lease: no second agent call.
    assert (turn.status, turn.output) == (pb.TURN_STATUS_COMPLETED, "first half, second half")
    assert retried[0].started.replayed
    assert reply_of(retried) == "first half, second half"
