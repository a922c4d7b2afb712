"""Run records items: the user's message, what the agent did, its reply."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

from agentsessions.sessions.v1 import sessions_pb2 as pb

from agent_sessions.agents import AgentContext, AgentEvent
from agent_sessions.model import Item, ItemType
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, refusal, rpc_error, run, serving

USER = "user-1"


async def items_of(stub: Stub, session: pb.Session) -> list[pb.Item]:
    response = await stub.ListItems(
        pb.ListItemsRequest(session_id=session.session_id, user_id=session.user_id)
    )
    return list(response.items)


def kinds(items: list[pb.Item]) -> list[tuple[int, str, str]]:
    return [(item.type, item.role, item.name) for item in items]


async def test_a_completed_run_stores_the_users_message_and_the_reply(stub: Stub) -> None:
    session = await create(stub)

    await run(stub, session, "Hello")
    items = await items_of(stub, session)

    assert kinds(items) == [
        (pb.ITEM_TYPE_MESSAGE, "user", ""),
        (pb.ITEM_TYPE_MESSAGE, "assistant", ""),
    ]
    assert [json.loads(item.payload_json)["content"] for item in items] == [
        "Hello",
        "Echo (turn 1): Hello",
    ]
    assert {item.turn_index for item in items} == {1}


async def test_the_weather_agents_tool_call_and_result_are_stored_and_streamed(
    stub: Stub,
) -> None:
    session = await create(stub, agent_id="weather")

    events = await run(stub, session, "How's the weather in Shanghai?")
    items = await items_of(stub, session)

    streamed = [e.item for e in events if e.WhichOneof("event") == "item"]
    assert [(i.type, i.name) for i in streamed] == [
        (pb.ITEM_TYPE_TOOL_CALL, "get_weather"),
        (pb.ITEM_TYPE_TOOL_RESULT, "get_weather"),
    ]
    assert kinds(items) == [
        (pb.ITEM_TYPE_MESSAGE, "user", ""),
        (pb.ITEM_TYPE_TOOL_CALL, "assistant", "get_weather"),
        (pb.ITEM_TYPE_TOOL_RESULT, "tool", "get_weather"),
        (pb.ITEM_TYPE_MESSAGE, "assistant", ""),
    ]
    assert items[1].call_id == items[2].call_id != ""
    assert json.loads(items[2].payload_json)["output"] == {
        "city": "Shanghai",
        "sky": "sunny",
        "celsius": 22,
    }
    assert list(events[-1].completed.turn.items) == items


async def test_a_failed_run_stores_no_item_and_keeps_its_input(stub: Stub) -> None:
    session = await create(stub, agent_id="scripted")

    await rpc_error(run(stub, session, "explode"))

    assert await items_of(stub, session) == []


async def test_items_appended_between_runs_are_numbered_on(stub: Stub) -> None:
    session = await create(stub)
    await run(stub, session, "one")
    await stub.AppendItems(
        pb.AppendItemsRequest(
            session_id=session.session_id,
            user_id=USER,
            items=[pb.Item(type=pb.ITEM_TYPE_MESSAGE, role="user", payload_json='"note"')],
        )
    )

    events = await run(stub, session, "two")

    assert [i.sequence for i in events[-1].completed.turn.items] == [4, 5]
    assert [i.turn_index for i in await items_of(stub, session)] == [1, 1, 2, 3, 3]


class ContextReporter:
    """Answers with what its context holds: each history turn's item types."""

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        yield Item(ItemType.REASONING, json.dumps({"thought": text}), role="assistant")
        yield json.dumps([[int(item.type) for item in turn.items] for turn in context.history])


async def test_the_agents_context_carries_the_items_of_its_history_turns(
    store_url: str, key_prefix: str
) -> None:
    settings = server_settings(store_url, key_prefix)
    async with serving(settings, agents={"reporter": ContextReporter()}) as (_, stub):
        session = await create(stub, agent_id="reporter")
        await run(stub, session, "first")

        events = await run(stub, session, "second")

    seen = json.loads(events[-1].completed.turn.output)
    message, reasoning = int(ItemType.MESSAGE), int(ItemType.REASONING)
    assert seen == [[message, reasoning, message]]


class BadItems:
    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        yield Item(ItemType.TOOL_CALL, "{not json", name="broken")
        yield "never stored"


async def test_an_agent_item_that_is_not_json_fails_the_turn_as_the_agents(
    store_url: str, key_prefix: str
) -> None:
    settings = server_settings(store_url, key_prefix)
    async with serving(settings, agents={"bad": BadItems()}) as (_, stub):
        session = await create(stub, agent_id="bad")

        error = await rpc_error(run(stub, session, "go"))
        stored = await items_of(stub, session)

    assert refusal(error)[1] == "AGENT_FAILED"
    assert stored == []


async def test_list_turns_gives_each_turns_items_when_asked(stub: Stub) -> None:
    session = await create(stub, agent_id="weather")
    await run(stub, session, "How's the weather in Shanghai?")
    await run(stub, session, "Hello")

    plain = await stub.ListTurns(pb.ListTurnsRequest(session_id=session.session_id, user_id=USER))
    with_items = await stub.ListTurns(
        pb.ListTurnsRequest(session_id=session.session_id, user_id=USER, include_items=True)
    )

    assert [len(t.items) for t in plain.turns] == [0, 0]
    assert [[i.type for i in t.items] for t in with_items.turns] == [
        [
            pb.ITEM_TYPE_MESSAGE,
            pb.ITEM_TYPE_TOOL_CALL,
            pb.ITEM_TYPE_TOOL_RESULT,
            pb.ITEM_TYPE_MESSAGE,
        ],
        [pb.ITEM_TYPE_MESSAGE, pb.ITEM_TYPE_MESSAGE],
    ]
    assert [i.turn_index for t in with_items.turns for i in t.items] == [1, 1, 1, 1, 2, 2]


class ToolHeavy:
    """Makes many tool calls a turn, and answers with what its context holds: each history
    turn's item count."""

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        for n in range(30):
            call_id = f"c-{context.turn_index}-{n}"
            yield Item(ItemType.TOOL_CALL, "{}", name="lookup", call_id=call_id)
            yield Item(ItemType.TOOL_RESULT, '"ok"', name="lookup", call_id=call_id)
        yield json.dumps([len(turn.items) for turn in context.history])


async def test_a_history_turn_whose_items_do_not_all_fit_the_context_gets_none(
    store_url: str, key_prefix: str
) -> None:
    # 2 context turns: the newest 32 items cover only the end of the first turn's 62.
    settings = server_settings(store_url, key_prefix, context_turns=2)
    async with serving(settings, agents={"heavy": ToolHeavy()}) as (_, stub):
        session = await create(stub, agent_id="heavy")
        await run(stub, session, "one")

        events = await run(stub, session, "two")

    assert json.loads(events[-1].completed.turn.output) == [0]
