"""Watching sessions and resuming runs from the client (WatchSession, ResumeRun, detached
runs), against a live server on each store.

The echo agent answers most tests; those that need a run still going when they resume it,
or a run that fails, use a server whose agent "scripted" is tests.agents.ScriptedAgent
("pause" answers "first half, ", waits, then "second half"; "explode" fails mid-reply).
This module also holds what test_sessionctl_watch.py shares: that server, and a TCP proxy
that drops its connections on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb

from agent_sessions_client import (
    AsyncSession,
    AsyncSessionClient,
    NotFoundError,
    RunEvent,
    SessionClient,
    SessionEvent,
    SessionsError,
    SessionStatus,
    TurnStatus,
)
from launchers.redis_server import RedisServer, free_port
from tests.client.conftest import SESSION_SERVER
from tests.processes import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
PAUSE_S = 1.5  # how long "pause" waits between the halves of its reply
WAIT_S = 15  # the most a test waits for the events it expects


@pytest.fixture(scope="session", params=["memory", "redis"])
def scripted_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The address of a session-server whose agent "scripted" is tests.agents.ScriptedAgent
    (and echo the default), on the memory or the Redis store."""
    store = "memory://"
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        store = redis.url
    agents = {
        "scripted": {
            "kind": "plugin",
            "object": "tests.agents:ScriptedAgent",
            "options": {"pause_s": PAUSE_S},
        }
    }
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            *(SESSION_SERVER, "--address", address, "--store", store),
            *("--key-prefix", f"watch-{uuid.uuid4().hex[:8]}:", "--log-level", "WARNING"),
            *("--agents", json.dumps(agents), "--default-agent", "echo"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        wait_until_serving(address)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=15)


class DroppingProxy:
    """Forwards TCP connections to ``target``; :meth:`drop` cuts every open one at once,
    as a network failure or a load balancer would, and later ones go through again."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.drops = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """Cuts every connection open now."""
        with self._lock:
            cut, self._open = self._open, []
            self.drops += 1
        for end in cut:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        """Cuts every connection and takes no more."""
        # A blocked accept() goes on after a mere close(): shutdown() wakes it up.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.drop()


@pytest.fixture
async def client(live_server: str) -> AsyncIterator[AsyncSessionClient]:
    async with AsyncSessionClient(live_server) as made:
        yield made


@pytest.fixture
async def scripted(scripted_server: str) -> AsyncIterator[AsyncSessionClient]:
    async with AsyncSessionClient(scripted_server) as made:
        yield made


async def watch_until(
    session: AsyncSession, last_kind: str, *, after_sequence: int | None = 0, count: int = 1
) -> list[SessionEvent]:
    """The session's events up to the ``count``-th of kind ``last_kind``."""
    seen: list[SessionEvent] = []
    async with asyncio.timeout(WAIT_S):
        async for event in session.watch(after_sequence=after_sequence):
            seen.append(event)
            if event.kind == last_kind:
                count -= 1
                if not count:
                    return seen
    raise AssertionError(f"the watch ended before {last_kind}: {[e.kind for e in seen]}")


def run_kinds(events: list[SessionEvent]) -> list[str]:
    """The kinds of a run's events, a run of deltas as one."""
    kinds: list[str] = []
    for event in events:
        if not (event.kind == "delta" and kinds and kinds[-1] == "delta"):
            kinds.append(event.kind)
    return kinds


async def test_a_watch_sees_the_turn_that_another_client_runs(
    live_server: str, client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo")
    async with AsyncSessionClient(live_server) as other:
        watched = await other.load_session(session.session_id, user_id=user_id)
        # From the start of the log (0), so the watch misses nothing that the run writes
        # before the watch is established.
        watching = asyncio.create_task(watch_until(watched, "turn_committed"))
        reply = await session.run("Hi")
        events = await watching

    run = [e for e in events if e.run_id or e.kind == "turn_committed"]
    assert run_kinds(run) == ["run_started", "delta", "turn_committed"]
    assert "".join(e.text for e in run if e.kind == "delta") == reply == "Echo (turn 1): Hi"
    sequences = [e.sequence for e in events]
    assert sequences == sorted(set(sequences)) and sequences[0] > 0
    started, committed = run[0], run[-1]
    assert started.turn_index == committed.turn_index == 1
    assert started.run_id and {e.run_id for e in run if e.kind == "delta"} == {started.run_id}
    assert committed.turn is not None and committed.turn.output == reply
    assert committed.turn.status is TurnStatus.COMPLETED
    assert committed.info is not None and committed.info.turn_count == 1
    assert watched.info.turn_count == 1  # the watched session follows its events
    assert all(e.time is not None for e in events)


async def test_a_watch_after_a_sequence_gets_only_what_came_after(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo")
    await session.run("one")
    await session.run("two")
    everything = await watch_until(session, "turn_committed", count=2)
    first_commit = next(e for e in everything if e.kind == "turn_committed")

    after = await watch_until(session, "turn_committed", after_sequence=first_commit.sequence)

    assert after == everything[everything.index(first_commit) + 1 :]
    assert after[0].kind == "run_started" and after[0].turn_index == 2


async def test_updates_the_end_and_the_deletion_are_events_and_the_watch_ends(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo", state={"a": 1})
    await session.update_state({"b": 2})
    await session.end()
    events: list[SessionEvent] = []
    async with asyncio.timeout(WAIT_S):
        async for event in session.watch(after_sequence=0):
            events.append(event)
            if event.kind == "ended":  # the watch is established: now the deletion
                await session.delete()

    assert [e.kind for e in events] == ["session_updated", "ended", "deleted"]
    updated, ended, deleted = events
    assert updated.info is not None and updated.info.state == {"a": 1, "b": 2}
    assert ended.info is not None and ended.info.status is SessionStatus.ENDED
    assert deleted.final and not ended.final
    assert updated.sequence < ended.sequence < deleted.sequence


async def test_a_watch_of_another_users_session_is_not_found(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo")
    # The same session id, as another user's: not found, like every call on it.
    foreign = AsyncSession(
        client,
        pb.Session(
            session_id=session.session_id,
            user_id="someone-else",
            status=pb.SESSION_STATUS_ACTIVE,
        ),
    )

    with pytest.raises(NotFoundError):
        async with asyncio.timeout(WAIT_S):
            [e async for e in foreign.watch(after_sequence=0)]


async def until_first_delta(events: AsyncIterator[RunEvent]) -> list[RunEvent]:
    """A run's events up to the first piece of its reply; then the caller goes away (its
    call is cancelled)."""
    received: list[RunEvent] = []
    async for event in events:
        received.append(event)
        if event.kind == "delta":
            break
    await events.aclose()  # type: ignore[attr-defined]  # an async generator
    return received


async def test_resume_by_request_id_goes_on_after_the_last_event_received(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo")
    request_id = uuid.uuid4().hex
    received = await until_first_delta(
        session.stream_events("How are you today?", request_id=request_id, detach=True)
    )

    rest = [
        e async for e in session.resume(request_id=request_id, after_sequence=received[-1].sequence)
    ]

    started = received[0]
    assert started.kind == "started" and started.run_id and started.sequence > 0
    assert [e.kind for e in rest][-1] == "completed"
    assert all(e.sequence > received[-1].sequence for e in rest)
    text = "".join(e.text for e in received + rest if e.kind == "delta")
    assert text == "Echo (turn 1): How are you today?"
    completed = rest[-1]
    assert completed.turn is not None and completed.turn.output == text
    assert completed.turn.request_id == request_id
    info = await session.refresh()
    assert (info.turn_count, info.total_turns) == (1, 1)  # the agent ran once


async def test_resume_by_run_id_from_the_start_repeats_the_run(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo")
    first = [e async for e in session.stream_events("Hi", detach=True)]

    again = [e async for e in session.resume(run_id=first[0].run_id)]

    assert [(e.kind, e.sequence, e.text) for e in again] == [
        (e.kind, e.sequence, e.text) for e in first
    ]
    assert first[-1].info is not None and session.info.turn_count == 1


async def test_stream_with_detach_yields_the_reply(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo")

    reply = await session.run("Hi", detach=True)

    assert reply == "Echo (turn 1): Hi"
    assert session.info.turn_count == 1


async def test_resume_of_an_unknown_run_is_not_found(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo")

    with pytest.raises(NotFoundError):
        [e async for e in session.resume(request_id="never-run")]


async def test_resume_takes_a_run_id_or_a_request_id(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="echo")

    with pytest.raises(ValueError, match="one of them"):
        session.resume()
    with pytest.raises(ValueError, match="one of them"):
        session.resume(run_id="r", request_id="q")


async def test_a_detached_run_finishes_without_its_caller_and_a_retry_attaches_to_it(
    scripted: AsyncSessionClient, user_id: str
) -> None:
    session = await scripted.create_session(user_id=user_id, agent_id="scripted")
    request_id = uuid.uuid4().hex
    # Gone while the agent pauses.
    await until_first_delta(session.stream_events("pause", request_id=request_id, detach=True))

    # The same run again, while the first still runs: attached to it, not run twice.
    retried = [e async for e in session.stream_events("pause", request_id=request_id, detach=True)]

    assert "".join(e.text for e in retried if e.kind == "delta").endswith("second half")
    assert retried[-1].kind == "completed"
    info = await session.refresh()
    assert (info.turn_count, info.total_turns) == (1, 1)


async def test_resume_follows_a_run_still_in_progress_to_its_end(
    scripted: AsyncSessionClient, user_id: str
) -> None:
    session = await scripted.create_session(user_id=user_id, agent_id="scripted")
    request_id = uuid.uuid4().hex
    received = await until_first_delta(
        session.stream_events("pause", request_id=request_id, detach=True)
    )
    last = received[-1].sequence

    rest = [e async for e in session.resume(request_id=request_id, after_sequence=last)]

    assert "".join(e.text for e in rest if e.kind == "delta") == "second half"
    assert rest[-1].turn is not None and rest[-1].turn.output == "first half, second half"


async def test_resume_of_a_failed_run_raises_its_error(
    scripted: AsyncSessionClient, user_id: str
) -> None:
    session = await scripted.create_session(user_id=user_id, agent_id="scripted")
    request_id = uuid.uuid4().hex
    with pytest.raises(SessionsError) as run_error:
        [e async for e in session.stream_events("explode", request_id=request_id, detach=True)]

    with pytest.raises(SessionsError) as resume_error:
        [e async for e in session.resume(request_id=request_id)]

    assert type(resume_error.value) is type(run_error.value)
    assert resume_error.value.reason == run_error.value.reason


def test_the_blocking_client_watches_and_resumes(live_server: str, user_id: str) -> None:
    with SessionClient(live_server) as client:
        session = client.create_session(user_id=user_id, agent_id="echo")
        request_id = uuid.uuid4().hex
        run = list(session.stream_events("Hi", request_id=request_id, detach=True))
        resumed = list(session.resume(request_id=request_id, after_sequence=run[0].sequence))
        events = []
        for event in session.watch(after_sequence=0):
            events.append(event)
            if event.kind == "turn_committed":
                session.delete()

    assert "".join(e.text for e in resumed if e.kind == "delta") == "Echo (turn 1): Hi"
    assert run_kinds([e for e in events if e.run_id]) == ["run_started", "delta", "turn_committed"]
    assert [e.kind for e in events][-1] == "deleted"
