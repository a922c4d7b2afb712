"""The OpenAI Agents SDK's own runner with the service as its session store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from agents import Agent, Runner, SQLiteSession, function_tool, set_tracing_disabled
from agents.items import TResponseInputItem
from agents.memory import Session, SessionSettings

from agent_sessions_client import (
    AbortedError,
    AsyncSessionClient,
    FailedPreconditionError,
    ItemType,
    SessionClient,
    UnauthenticatedError,
    UnavailableError,
    openai_agents,
)
from agent_sessions_client.openai_agents import GrpcSession
from launchers.redis_server import RedisServer, free_port
from tests.client.scripted_openai_model import ScriptedModel
from tests.conftest import server_settings
from tests.grpc_helpers import serving

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_trace_export() -> Iterator[None]:
    # The SDK exports traces to OpenAI by default: offline tests keep them.
    set_tracing_disabled(True)
    yield
    set_tracing_disabled(False)


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny, 22°C"


def content(item: TResponseInputItem | None) -> str:
    """A message item's content, as text (an assistant's parts joined)."""
    assert item is not None
    value = dict(item).get("content")
    if isinstance(value, list):
        return "".join(str(part.get("text", "")) for part in value)
    return str(value)


def an_agent(model: ScriptedModel) -> Agent:
    return Agent(name="weather", instructions="Answer briefly.", model=model, tools=[get_weather])


def a_session(address: str, user_id: str, **options: object) -> GrpcSession:
    return GrpcSession(f"chat-{uuid.uuid4().hex[:8]}", user_id=user_id, target=address, **options)  # type: ignore[arg-type]


async def test_it_is_a_session_of_the_sdk(live_server: str, user_id: str) -> None:
    assert isinstance(a_session(live_server, user_id), Session)


async def test_a_tool_using_conversation_is_sent_back_to_the_model_next_turn(
    live_server: str, user_id: str
) -> None:
    model = ScriptedModel()
    session = a_session(live_server, user_id)
    await Runner.run(an_agent(model), "How's the weather in Shanghai?", session=session)

    result = await Runner.run(an_agent(model), "Thanks!", session=session)

    assert result.final_output == "I was sent 5 items; 你好"
    replayed = model.inputs[-1]
    assert [item.get("type", "message") for item in replayed] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
        "message",
    ]
    assert replayed[2]["output"] == "Shanghai: sunny, 22°C"  # type: ignore[typeddict-item]


async def test_items_read_back_equal_what_the_sdk_stores_in_its_own_session(
    live_server: str, user_id: str
) -> None:
    ours, theirs = a_session(live_server, user_id), SQLiteSession("reference")
    for session in (ours, theirs):
        model = ScriptedModel()
        await Runner.run(an_agent(model), "How's the weather in Shanghai?", session=session)
        await Runner.run(an_agent(model), "And tomorrow? 明天呢", session=session)

    assert await ours.get_items() == await theirs.get_items()


async def test_the_items_are_typed_in_the_services_history(live_server: str, user_id: str) -> None:
    session = a_session(live_server, user_id)
    await Runner.run(an_agent(ScriptedModel()), "How's the weather in Paris?", session=session)

    async with AsyncSessionClient(live_server) as client:
        stored = await client.load_session(session.session_id, user_id=user_id)
        items = [item async for item in stored.items()]

    assert stored.info.external_agent and stored.agent_id == "openai-agents"
    assert [(i.type, i.name, i.role) for i in items] == [
        (ItemType.MESSAGE, "", "user"),
        (ItemType.TOOL_CALL, "get_weather", ""),
        (ItemType.TOOL_RESULT, "", ""),
        (ItemType.MESSAGE, "", "assistant"),
    ]
    assert items[1].call_id == items[2].call_id != ""


async def test_run_streamed_keeps_the_turn(live_server: str, user_id: str) -> None:
    session = a_session(live_server, user_id)
    streamed = Runner.run_streamed(
        an_agent(ScriptedModel()), "How's the weather in Oslo?", session=session
    )
    async for _ in streamed.stream_events():
        pass

    assert len(await session.get_items()) == 4


def in_a_thread(work: Callable[[], T]) -> T:
    """``work``'s result, run on a thread of its own: its event loops (run_sync's, the
    thread's default, and asyncio.run's) never touch the test runner's."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(work).result(timeout=120)


def run_sync_loop() -> asyncio.AbstractEventLoop:
    """This thread's default loop: run_sync's, which the SDK leaves open for the next."""
    return asyncio.get_event_loop_policy().get_event_loop()


def close_loop(loop: asyncio.AbstractEventLoop, session: GrpcSession) -> None:
    """Closes the session's client on ``loop``, then the loop."""
    loop.run_until_complete(session.close())
    loop.close()


def test_run_sync_and_run_share_one_session_object_across_event_loops(
    live_server: str, user_id: str
) -> None:
    model = ScriptedModel()
    session = a_session(live_server, user_id)

    async def second_turn() -> object:
        result = await Runner.run(an_agent(model), "Thanks", session=session)
        await session.close()
        return result.final_output

    def two_loops() -> object:
        Runner.run_sync(an_agent(model), "How's the weather in Rome?", session=session)
        first_loop = run_sync_loop()
        # asyncio.run: another loop than run_sync's, with the same session object.
        answer = asyncio.run(second_turn())
        close_loop(first_loop, session)
        return answer

    assert in_a_thread(two_loops) == "I was sent 5 items; 你好"


async def test_a_session_is_created_on_the_first_write(live_server: str, user_id: str) -> None:
    session = a_session(live_server, user_id, app="travel", agent_id="planner")
    assert await session.get_items() == []

    await session.add_items([{"role": "user", "content": "hi"}])

    async with AsyncSessionClient(live_server) as client:
        created = await client.load_session(session.session_id, user_id=user_id, app="travel")
    assert (created.agent_id, created.info.external_agent) == ("planner", True)


async def test_get_items_gives_the_latest_n_oldest_first(live_server: str, user_id: str) -> None:
    session = a_session(live_server, user_id, session_settings=SessionSettings(limit=2))
    await session.add_items([{"role": "user", "content": str(n)} for n in range(5)])

    by_setting = await session.get_items()
    by_argument = await session.get_items(limit=3)

    assert [content(item) for item in by_setting] == ["3", "4"]
    assert [content(item) for item in by_argument] == ["2", "3", "4"]


async def test_pop_item_removes_and_returns_the_newest(live_server: str, user_id: str) -> None:
    session = a_session(live_server, user_id)
    await session.add_items([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])

    popped = await session.pop_item()

    assert popped == {"role": "user", "content": "b"}
    assert await session.get_items() == [{"role": "user", "content": "a"}]


async def test_concurrent_pops_never_return_the_same_item(live_server: str, user_id: str) -> None:
    session = a_session(live_server, user_id)
    await session.add_items([{"role": "user", "content": str(n)} for n in range(10)])
    other = GrpcSession(session.session_id, user_id=user_id, target=live_server)

    popped = await asyncio.gather(*(s.pop_item() for s in (session, other) for _ in range(5)))

    assert sorted(content(item) for item in popped if item) == [str(n) for n in range(10)]


async def test_clear_session_empties_the_history(live_server: str, user_id: str) -> None:
    session = a_session(live_server, user_id)
    await session.add_items([{"role": "user", "content": "a"}])

    await session.clear_session()

    assert await session.get_items() == []
    assert await session.pop_item() is None


async def test_more_items_than_one_append_takes_are_all_kept(
    live_server: str, user_id: str
) -> None:
    session = a_session(live_server, user_id)

    await session.add_items([{"role": "user", "content": str(n)} for n in range(250)])

    assert [content(item) for item in await session.get_items()] == [str(n) for n in range(250)]


async def test_an_atomic_replace_swaps_the_history_for_its_compacted_form(
    live_server: str, user_id: str
) -> None:
    session = a_session(live_server, user_id)
    await session.add_items([{"role": "user", "content": str(n)} for n in range(6)])
    await session.get_items()

    replaced = await session._atomic_replace_items([{"role": "system", "content": "summary"}])

    assert replaced
    assert await session.get_items() == [{"role": "system", "content": "summary"}]


async def test_a_replace_after_another_writer_added_items_keeps_the_history(
    live_server: str, user_id: str
) -> None:
    compactor = a_session(live_server, user_id)
    await compactor.add_items([{"role": "user", "content": "a"}])
    await compactor.get_items()
    writer = GrpcSession(compactor.session_id, user_id=user_id, target=live_server)
    await writer.add_items([{"role": "user", "content": "written meanwhile"}])

    with pytest.raises(AbortedError):
        await compactor._atomic_replace_items([{"role": "system", "content": "summary"}])

    assert len(await writer.get_items()) == 2


async def test_an_ended_session_refuses_new_items(live_server: str, user_id: str) -> None:
    session = a_session(live_server, user_id)
    await session.add_items([{"role": "user", "content": "a"}])
    async with AsyncSessionClient(live_server) as client:
        await (await client.load_session(session.session_id, user_id=user_id)).end()

    with pytest.raises(FailedPreconditionError):
        await Runner.run(an_agent(ScriptedModel()), "hello again", session=session)

    assert len(await session.get_items()) == 1


async def test_an_expired_session_starts_over(live_server: str, user_id: str) -> None:
    with SessionClient(live_server) as client:
        client.create_session(
            user_id=user_id, agent_id="a", session_id="short", external_agent=True
        ).delete()  # what expiry leaves: no session of that id
    session = GrpcSession("short", user_id=user_id, target=live_server)

    await Runner.run(an_agent(ScriptedModel()), "hello", session=session)

    assert len(await session.get_items()) == 2


# --- two application processes, two server replicas, one Redis ----------------------


APPLICATION = """
import sys
from agents import Agent, Runner, set_tracing_disabled
from agent_sessions_client import openai_agents
from agent_sessions_client.openai_agents import GrpcSession
from tests.client.scripted_openai_model import ScriptedModel

address, user_id, name, turns = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
set_tracing_disabled(True)
session = GrpcSession("shared", user_id=user_id, target=address)
agent = Agent(name="chat", model=ScriptedModel())
for n in range(turns):
    Runner.run_sync(agent, f"{name} {n}", session=session)
"""


def test_two_application_processes_on_two_replicas_lose_and_duplicate_nothing(
    two_replicas: tuple[str, str], user_id: str
) -> None:
    turns_each = 10
    applications = [
        subprocess.Popen(
            [sys.executable, "-c", APPLICATION, address, user_id, name, str(turns_each)],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for address, name in zip(two_replicas, ("left", "right"), strict=True)
    ]
    for application in applications:
        _, errors = application.communicate(timeout=120)
        assert application.returncode == 0, errors

    reader = GrpcSession("shared", user_id=user_id, target=two_replicas[0])

    async def read() -> list[TResponseInputItem]:
        try:
            return await reader.get_items()
        finally:
            await reader.close()

    items = in_a_thread(lambda: asyncio.run(read()))
    said = [content(item) for item in items if dict(item).get("role") == "user"]
    assert sorted(said) == sorted(f"{n} {i}" for n in ("left", "right") for i in range(turns_each))
    assert len(items) == 2 * 2 * turns_each  # each turn: the input and the answer


async def test_a_turn_while_redis_is_down_fails_unavailable_and_the_next_one_continues(
    user_id: str,
) -> None:
    redis = RedisServer(append_only=True)
    redis.start()
    try:
        settings = server_settings(redis.url, "outage:")
        async with serving(settings) as (server, _):
            session = GrpcSession("s", user_id=user_id, target=server.address)
            model = ScriptedModel()
            await Runner.run(an_agent(model), "before", session=session)

            redis.kill()
            with pytest.raises(UnavailableError):
                await Runner.run(an_agent(model), "during", session=session)
            redis.start()
            await Runner.run(an_agent(model), "after", session=session)

            said = [content(item) for item in await session.get_items()]
            await session.close()
    finally:
        redis.stop()

    assert said == ["before", "I was sent 1 items; 你好", "after", "I was sent 3 items; 你好"]


async def test_an_append_retried_with_its_request_id_is_stored_once(
    live_server: str, user_id: str
) -> None:
    # What the channel's retry after UNAVAILABLE sends: the same append, same request id.
    session = a_session(live_server, user_id)
    await session.add_items([{"role": "user", "content": "first"}])
    item = openai_agents._service_item({"role": "user", "content": "once"})

    await session._append([item], "retried-request")
    await session._append([item], "retried-request")

    assert [content(i) for i in await session.get_items()] == ["first", "once"]


async def test_a_server_that_cannot_be_reached_is_unavailable_and_nothing_is_half_written(
    user_id: str,
) -> None:
    session = GrpcSession("nowhere", user_id=user_id, target=f"127.0.0.1:{free_port()}", timeout=2)

    with pytest.raises(UnavailableError):
        await session.add_items([{"role": "user", "content": "a"}])


async def test_client_options_reach_the_client_of_each_event_loop(user_id: str) -> None:
    settings = server_settings("memory://", "options:", auth_tokens="secret")
    async with serving(settings) as (server, _):
        with_token = GrpcSession(
            "s", user_id=user_id, target=server.address, client_options={"token": "secret"}
        )
        without = GrpcSession("s", user_id=user_id, target=server.address)

        await with_token.add_items([{"role": "user", "content": "a"}])
        with pytest.raises(UnauthenticatedError):
            await without.get_items()
        await with_token.close()
        await without.close()


async def test_a_compaction_snapshot_swaps_a_suffix_of_the_newest_items(
    live_server: str, user_id: str
) -> None:
    session = a_session(live_server, user_id)
    await session.add_items([{"role": "user", "content": str(n)} for n in range(6)])
    snapshot = await session._get_compaction_snapshot(3)
    assert snapshot is not None
    assert ([content(i) for i in snapshot.items], snapshot.complete) == (["3", "4", "5"], False)

    replaced = await snapshot.replace_suffix(1, [{"role": "system", "content": "summary"}])

    assert replaced
    assert [content(i) for i in await session.get_items()] == ["0", "1", "2", "3", "summary"]


async def test_a_compaction_snapshot_of_a_changed_history_replaces_nothing(
    live_server: str, user_id: str
) -> None:
    session = a_session(live_server, user_id)
    await session.add_items([{"role": "user", "content": str(n)} for n in range(3)])
    snapshot = await session._get_compaction_snapshot(10)
    assert snapshot is not None and snapshot.complete
    await session.add_items([{"role": "user", "content": "written meanwhile"}])

    replaced = await snapshot.replace_suffix(0, [{"role": "system", "content": "summary"}])

    assert not replaced
    assert len(await session.get_items()) == 4
