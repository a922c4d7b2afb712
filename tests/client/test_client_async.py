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
    Item,
    ItemType,
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


async def test_items_append_list_pop_replace_and_clear(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="sdk", external_agent=True)
    payload = '{"b": 2,  "a": "\\u00e9 晴" }'  # key order, spacing, escapes kept

    written = await session.append_items(
        [
            Item.message("user", "How's the weather in Shanghai?"),
            Item.tool_call("get_weather", {"city": "Shanghai"}, call_id="call-1"),
            Item(ItemType.TOOL_RESULT, payload, call_id="call-1", role="tool"),
            Item.message("assistant", "Sunny, 22°C"),
        ],
        state={"city": "Shanghai"},
    )
    listed = [i async for i in session.items(page_size=3)]
    last_two = await session.last_items(2)
    popped = await session.pop_item()
    (summary,) = await session.replace_items(
        1, [Item.message("assistant", "(summary)")], expected_last_sequence=3
    )
    after_replace = [i.sequence async for i in session.items(newest_first=True)]
    info = await session.clear_items()
    emptied = [i async for i in session.items()]

    assert [i.sequence for i in written] == [1, 2, 3, 4]
    assert listed == written
    assert listed[2].payload_json == payload
    assert last_two == written[2:]
    assert popped == written[3]
    assert summary.sequence == 5
    assert after_replace == [5, 1]
    assert (info.external_agent, info.last_item_sequence, info.state) == (
        True,
        5,
        {"city": "Shanghai"},
    )
    assert emptied == []
    assert await session.pop_item() is None


async def test_an_append_retried_with_its_request_id_returns_the_first_items(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="sdk", external_agent=True)
    items = [Item.message("user", "hi"), Item.message("assistant", "hello")]

    first = await session.append_items(items, request_id="turn-1")
    again = await session.append_items(items, request_id="turn-1")

    assert again == first
    assert [i.sequence async for i in session.items()] == [1, 2]


async def test_a_stale_expected_last_sequence_is_aborted(
    client: AsyncSessionClient, user_id: str
) -> None:
    session = await client.create_session(user_id=user_id, agent_id="sdk", external_agent=True)
    await session.append_items([Item.message("user", "one")], expected_last_sequence=0)

    with pytest.raises(AbortedError) as raised:
        await session.append_items([Item.message("user", "two")], expected_last_sequence=0)

    assert raised.value.reason == "SEQUENCE_MISMATCH"
    assert [i.sequence for i in await session.last_items(10)] == [1]


async def test_an_external_session_refuses_runs(client: AsyncSessionClient, user_id: str) -> None:
    session = await client.create_session(user_id=user_id, agent_id="sdk", external_agent=True)

    with pytest.raises(FailedPreconditionError) as raised:
        await session.run("hi")

    assert raised.value.reason == "EXTERNAL_AGENT"
