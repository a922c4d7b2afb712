"""AsyncSessionClient, the asyncio client, against a live server on each store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from agent_sessions_client import (
    AbortedError,
    AlreadyExistsError,
    AsyncSessionClient,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    SessionStatus,
    UnavailableError,
)
from launchers.redis_server import free_port


@pytest.fixture
async def client(live_server: str) -> AsyncIterator[AsyncSessionClient]:
    async with AsyncSessionClient(live_server) as made:
        yield made


async def test_a_whole_conversation(client: AsyncSessionClient, user_id: str) -> None:
    session = await client.create_session(
        user_id=user_id, agent_id="my-agent", ttl=timedelta(hours=48), max_turns=100
    )

    first = await session.run("How's the weather in Shanghai?")
    chunks = [chunk async for chunk in session.stream("What about Beijing?")]
    info = await session.end()

    assert first == "Echo (turn 1): How's the weather in Shanghai?"
    assert "".join(chunks).endswith('(previous: "How\'s the weather in Shanghai?")')
    assert (info.status, info.turn_count, info.max_turns) == (SessionStatus.ENDED, 2, 100)


async def test_turns_iterates_the_whole_history(client: AsyncSessionClient, user_id: str) -> None:
    session = await client.create_session(user_id=user_id, agent_id="a")
    for i in range(3):
        await session.run(f"q{i}")

    inputs = [t.input async for t in session.turns(page_size=2)]
    newest = [t.index async for t in session.turns(page_size=2, newest_first=True)]

    assert inputs == ["q0", "q1", "q2"]
    assert newest == [3, 2, 1]


async def test_load_or_create_resumes_an_existing_session(
    client: AsyncSessionClient, user_id: str
) -> None:
    made = await client.load_or_create_session(user_id=user_id, agent_id="a", session_id="s-1")
    await made.run("first visit")

    again = await client.load_or_create_session(user_id=user_id, agent_id="a", session_id="s-1")
    loaded = await client.load_session("s-1", user_id=user_id)

    assert again.info.turn_count == loaded.info.turn_count == 1


async def test_list_sessions_reads_every_page(client: AsyncSessionClient, user_id: str) -> None:
    made = {
        (await client.create_session(user_id=user_id, agent_id="a")).session_id for _ in range(3)
    }

    listed = {s.session_id async for s in client.list_sessions(user_id=user_id, page_size=2)}

    assert listed == made


async def test_state_is_read_and_updated_with_optimistic_concurrency(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="a", state={"a": 1})
    stale = await client.load_session(session.session_id, user_id=user_id)

    assert await session.update_state({"b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(AbortedError):
        await stale.update_state({"c": 3})
    assert (await stale.refresh()).state == {"a": 1, "b": 2}


async def test_update_delete_and_errors(client: AsyncSessionClient, user_id: str) -> None:
    session = await client.create_session(user_id=user_id, agent_id="a", session_id="mine")

    info = await session.update(max_turns=0, labels={"tier": "gold"})
    with pytest.raises(AlreadyExistsError):
        await client.create_session(user_id=user_id, agent_id="a", session_id="mine")
    with pytest.raises(InvalidArgumentError):
        await session.run("x" * 40_000)
    await session.delete()

    assert info.labels == {"tier": "gold"}
    with pytest.raises(NotFoundError):
        await session.refresh()


async def test_an_ended_session_refuses_runs(client: AsyncSessionClient, user_id: str) -> None:
    session = await client.create_session(user_id=user_id, agent_id="a")
    await session.end()

    with pytest.raises(FailedPreconditionError):
        await session.run("hello?")


async def test_an_unreachable_server_raises_unavailable() -> None:
    async with AsyncSessionClient(f"127.0.0.1:{free_port()}", default_timeout=5) as nowhere:
        with pytest.raises(UnavailableError):
            await nowhere.load_session("any", user_id="u")


async def test_compress_then_export_and_import(client: AsyncSessionClient, user_id: str) -> None:
    session = await client.create_session(user_id=user_id, agent_id="my-agent")
    for i in range(1, 5):
        await session.run(f"Question {i}? More.")

    result = await session.compress(keep_last=1)
    history = [t.index async for t in session.turns()]
    record = json.loads(json.dumps(await session.export()))
    restored = await client.import_session(record, user_id=f"{user_id}-restored")

    assert (result.folded_turns, result.summarizer) == (3, "extractive")
    assert session.info == result.info
    assert (result.info.folded_turns, result.info.turn_count, result.info.total_turns) == (3, 4, 4)
    assert "Turn 2: user: Question 2? | agent: Echo (turn 2): Question 2?" in result.info.summary
    assert history == [4]
    assert (record["folded_turns"], [t["index"] for t in record["turns"]]) == (3, [4])
    assert (restored.info.folded_turns, restored.info.turn_count) == (3, 4)
    assert restored.info.summary == result.info.summary
    assert [t.index async for t in restored.turns()] == [4]


async def test_turns_include_archived_returns_the_folded_turns_too(
    archiving_server: str, user_id: str
) -> None:
    async with AsyncSessionClient(archiving_server) as client:
        session = await client.create_session(user_id=user_id, agent_id="a")
        for i in range(3):
            await session.run(f"q{i}")
        await session.compress(keep_last=0)

        history = [t.index async for t in session.turns()]
        everything = [t.input async for t in session.turns(include_archived=True)]

    assert (history, everything) == ([], ["q0", "q1", "q2"])
