"""Items over real gRPC: the history that an agent running elsewhere writes and reads."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from tests.grpc_helpers import Stub, create, refusal, rpc_error, run, state_of, turns

USER = "user-1"


def message(role: str, text: str, **fields: object) -> pb.Item:
    payload = json.dumps({"role": role, "content": text}, ensure_ascii=False)
    return pb.Item(type=pb.ITEM_TYPE_MESSAGE, role=role, payload_json=payload, **fields)  # type: ignore[arg-type]


def tool_call(call_id: str, arguments: str) -> pb.Item:
    payload = json.dumps({"name": "get_weather", "arguments": arguments, "call_id": call_id})
    return pb.Item(
        type=pb.ITEM_TYPE_TOOL_CALL, name="get_weather", call_id=call_id, payload_json=payload
    )


async def external(stub: Stub, **fields: Any) -> pb.Session:
    return await create(stub, agent_id="my-framework-agent", external_agent=True, **fields)


async def append(
    stub: Stub, session: pb.Session, *items: pb.Item, **fields: object
) -> pb.AppendItemsResponse:
    response: pb.AppendItemsResponse = await stub.AppendItems(
        pb.AppendItemsRequest(
            session_id=session.session_id,
            user_id=session.user_id,
            items=list(items),
            **fields,  # type: ignore[arg-type]
        )
    )
    return response


async def listed(stub: Stub, session: pb.Session, **fields: object) -> list[pb.Item]:
    response = await stub.ListItems(
        pb.ListItemsRequest(session_id=session.session_id, user_id=session.user_id, **fields)  # type: ignore[arg-type]
    )
    return list(response.items)


def sequences(items: list[pb.Item]) -> list[int]:
    return [item.sequence for item in items]


async def test_appended_items_are_numbered_and_read_back_byte_for_byte(stub: Stub) -> None:
    session = await external(stub)
    # Key order, spacing and non-ASCII text are the writer's: they come back as sent.
    odd = '{"z": 1,   "a": "上海 ☀", "n": 1.50}'
    written = await append(
        stub,
        session,
        message("user", "How's the weather in Shanghai?"),
        tool_call("call-1", '{"city": "Shanghai"}'),
        pb.Item(type=pb.ITEM_TYPE_TOOL_RESULT, call_id="call-1", payload_json=odd),
    )

    items = await listed(stub, session)

    assert sequences(list(written.items)) == sequences(items) == [1, 2, 3]
    assert {item.turn_index for item in items} == {1}
    assert items[2].payload_json == odd
    assert (items[1].type, items[1].name, items[1].call_id) == (
        pb.ITEM_TYPE_TOOL_CALL,
        "get_weather",
        "call-1",
    )
    assert written.session.last_item_sequence == 3


async def test_an_append_is_one_turn_with_text_views_of_its_messages(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "Hi"), message("assistant", "Hello!"))

    [turn] = await turns(stub, session)

    assert (turn.index, turn.status, turn.input, turn.output) == (
        1,
        pb.TURN_STATUS_COMPLETED,
        "Hi",
        "Hello!",
    )


async def test_the_last_n_items_are_the_newest_first_page(stub: Stub) -> None:
    session = await external(stub)
    for n in range(5):
        await append(stub, session, message("user", f"m{n}"))

    newest = await listed(stub, session, order_by="sequence desc", page_size=2)

    assert sequences(newest) == [5, 4]


async def test_items_page_after_a_sequence_number_in_either_order(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, *(message("user", f"m{n}") for n in range(5)))
    request = pb.ListItemsRequest(
        session_id=session.session_id, user_id=USER, page_size=2, after_sequence=1
    )

    pages = []
    while True:
        page = await stub.ListItems(request)
        pages.append(sequences(list(page.items)))
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    backwards = await listed(stub, session, order_by="sequence desc", after_sequence=3)

    assert pages == [[2, 3], [4, 5]]
    assert sequences(backwards) == [5, 4]


async def test_concurrent_pops_never_return_the_same_item(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, *(message("user", f"m{n}") for n in range(8)))
    request = pb.PopItemRequest(session_id=session.session_id, user_id=USER)

    popped = await asyncio.gather(*(stub.PopItem(request) for _ in range(10)))

    got = sorted(p.item.sequence for p in popped if p.HasField("item"))
    assert got == list(range(1, 9))
    assert await listed(stub, session) == []


async def test_sequence_numbers_are_never_reused_after_a_pop_or_a_clear(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "one"), message("user", "two"))
    await stub.PopItem(pb.PopItemRequest(session_id=session.session_id, user_id=USER))
    after_pop = await append(stub, session, message("user", "three"))
    await stub.ClearItems(pb.ClearItemsRequest(session_id=session.session_id, user_id=USER))
    after_clear = await append(stub, session, message("user", "four"))

    assert sequences(list(after_pop.items)) == [3]
    assert sequences(list(after_clear.items)) == [4]
    assert sequences(await listed(stub, session)) == [4]


async def test_a_clear_empties_the_history_and_keeps_the_counters(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "one"))

    cleared = await stub.ClearItems(
        pb.ClearItemsRequest(session_id=session.session_id, user_id=USER)
    )

    assert await listed(stub, session) == []
    assert await turns(stub, session) == []
    assert (cleared.session.total_turns, cleared.session.last_item_sequence) == (1, 1)


async def test_replace_swaps_the_items_after_a_sequence_number_in_one_step(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, *(message("user", f"m{n}") for n in range(4)))

    replaced = await stub.ReplaceItems(
        pb.ReplaceItemsRequest(
            session_id=session.session_id,
            user_id=USER,
            after_sequence=1,
            items=[message("assistant", "summary of m1..m3")],
        )
    )

    assert sequences(list(replaced.items)) == [5]
    assert sequences(await listed(stub, session)) == [1, 5]


async def test_a_stale_expected_sequence_is_aborted_and_writes_nothing(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "one"))

    error = await rpc_error(append(stub, session, message("user", "two"), expected_last_sequence=0))

    assert refusal(error)[:2] == (StatusCode.ABORTED, "SEQUENCE_MISMATCH")
    assert sequences(await listed(stub, session)) == [1]


async def test_a_stale_etag_is_aborted_and_writes_nothing(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "one"))

    error = await rpc_error(append(stub, session, message("user", "two"), etag=session.etag))

    assert refusal(error)[:2] == (StatusCode.ABORTED, "ETAG_MISMATCH")
    assert sequences(await listed(stub, session)) == [1]


async def test_a_retried_append_writes_nothing_and_answers_as_the_first(stub: Stub) -> None:
    session = await external(stub)
    first = await append(stub, session, message("user", "once"), request_id="r-1")

    again = await append(stub, session, message("user", "once"), request_id="r-1")

    assert again.items == first.items
    assert sequences(await listed(stub, session)) == [1]
    assert again.session.total_turns == 1


async def test_an_item_id_the_session_has_is_not_stored_twice(stub: Stub) -> None:
    session = await external(stub)
    [first] = (await append(stub, session, message("user", "hi", item_id="msg-1"))).items

    second = await append(
        stub, session, message("user", "hi", item_id="msg-1"), message("user", "new")
    )

    assert second.items[0] == first
    assert sequences(await listed(stub, session)) == [1, 2]


async def test_a_state_delta_commits_with_the_items(stub: Stub) -> None:
    session = await external(stub, state_json='{"keep": 1, "drop": 2}')

    written = await append(
        stub,
        session,
        message("user", "hi"),
        state_delta_json='{"count": 1}',
        state_removals=["drop"],
    )

    assert state_of(written.session) == {"keep": 1, "count": 1}


async def test_run_on_an_external_agents_session_says_to_append(stub: Stub) -> None:
    session = await external(stub)

    error = await rpc_error(run(stub, session, "hello"))

    assert refusal(error)[:2] == (StatusCode.FAILED_PRECONDITION, "EXTERNAL_AGENT")
    assert await turns(stub, session) == []


async def test_an_append_on_a_served_session_waits_for_its_running_turn(stub: Stub) -> None:
    session = await create(stub, agent_id="scripted")
    running = asyncio.ensure_future(run(stub, session, "pause"))
    await asyncio.sleep(0.2)

    busy = await rpc_error(append(stub, session, message("user", "meanwhile")))
    await running
    written = await append(stub, session, message("user", "after"))

    assert refusal(busy)[:2] == (StatusCode.ABORTED, "TURN_IN_PROGRESS")
    assert [item.turn_index for item in written.items] == [2]


async def test_the_session_says_its_agent_runs_elsewhere(stub: Stub) -> None:
    session = await external(stub)

    got = await stub.GetSession(pb.GetSessionRequest(session_id=session.session_id, user_id=USER))

    assert (got.external_agent, got.agent_id) == (True, "my-framework-agent")


async def test_compression_folds_the_items_of_the_folded_turns(stub: Stub) -> None:
    session = await external(stub)
    for n in range(3):
        await append(stub, session, message("user", f"q{n}"), message("assistant", f"a{n}"))

    await stub.CompressSession(
        pb.CompressSessionRequest(session_id=session.session_id, user_id=USER, keep_last=1)
    )

    assert sequences(await listed(stub, session)) == [5, 6]


async def test_malformed_items_are_invalid_naming_the_item(stub: Stub) -> None:
    session = await external(stub)
    cases = {
        "items[0].type": pb.Item(payload_json="{}"),
        "items[0].payload_json": pb.Item(type=pb.ITEM_TYPE_MESSAGE, payload_json="{nope"),
        "items[0].type_name": pb.Item(type=pb.ITEM_TYPE_OTHER, payload_json="{}"),
    }

    for field, item in cases.items():
        error = await rpc_error(append(stub, session, item))
        assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)
    assert await listed(stub, session) == []


async def test_an_append_with_no_item_is_invalid(stub: Stub) -> None:
    session = await external(stub)

    error = await rpc_error(append(stub, session))

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "items")


async def test_items_of_another_users_session_are_not_found(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "mine"))

    error = await rpc_error(
        stub.ListItems(pb.ListItemsRequest(session_id=session.session_id, user_id="intruder"))
    )

    assert refusal(error)[:2] == (StatusCode.NOT_FOUND, "SESSION_NOT_FOUND")


async def test_an_ended_session_takes_no_more_items(stub: Stub) -> None:
    session = await external(stub)
    await stub.EndSession(pb.EndSessionRequest(session_id=session.session_id, user_id=USER))

    error = await rpc_error(append(stub, session, message("user", "late")))

    assert refusal(error)[:2] == (StatusCode.FAILED_PRECONDITION, "SESSION_ENDED")


async def test_the_expected_sequence_is_the_newest_items_so_a_pop_meanwhile_is_seen(
    stub: Stub,
) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "one"), message("user", "two"))
    await stub.PopItem(pb.PopItemRequest(session_id=session.session_id, user_id=USER))

    stale = await rpc_error(append(stub, session, message("user", "x"), expected_last_sequence=2))
    fresh = await append(stub, session, message("user", "three"), expected_last_sequence=1)

    assert refusal(stale)[:2] == (StatusCode.ABORTED, "SEQUENCE_MISMATCH")
    assert sequences(list(fresh.items)) == [3]


def tool_result(call_id: str) -> pb.Item:
    payload = json.dumps({"call_id": call_id, "output": "sunny"})
    return pb.Item(type=pb.ITEM_TYPE_TOOL_RESULT, call_id=call_id, payload_json=payload)


async def test_compression_never_folds_a_tool_call_whose_result_stays(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "hi"), message("assistant", "hello"))
    await append(stub, session, message("user", "weather?"), tool_call("c-1", "{}"))
    await append(stub, session, tool_result("c-1"), message("assistant", "sunny"))
    await append(stub, session, message("user", "thanks"), message("assistant", "bye"))

    compressed = await stub.CompressSession(
        pb.CompressSessionRequest(session_id=session.session_id, user_id=USER, keep_last=2)
    )
    kept = await listed(stub, session)

    assert compressed.folded_turns == 1  # turn 2 stays: its call's result is in turn 3
    assert [(i.type, i.call_id) for i in kept if i.call_id] == [
        (pb.ITEM_TYPE_TOOL_CALL, "c-1"),
        (pb.ITEM_TYPE_TOOL_RESULT, "c-1"),
    ]


async def test_an_external_session_exported_and_imported_keeps_its_items(stub: Stub) -> None:
    session = await external(stub)
    await append(stub, session, message("user", "hi", item_id="m-1"), message("assistant", "yo"))
    await append(stub, session, tool_call("c-1", "{}"), request_id="r-2")
    await stub.PopItem(pb.PopItemRequest(session_id=session.session_id, user_id=USER))
    got = await stub.GetSession(pb.GetSessionRequest(session_id=session.session_id, user_id=USER))
    snapshot = pb.SessionSnapshot(
        session_id="restored",
        user_id="user-2",
        agent_id=got.agent_id,
        external_agent=True,
        turns=await turns(stub, session),
        items=await listed(stub, session),
        last_item_sequence=got.last_item_sequence,
    )

    restored = await stub.ImportSession(pb.ImportSessionRequest(snapshot=snapshot))
    copy = pb.Session(session_id="restored", user_id="user-2")
    items = await listed(stub, copy)
    retried = await append(stub, copy, message("user", "hi", item_id="m-1"))
    later = await append(stub, copy, message("user", "next"))

    assert restored.external_agent
    assert [(i.sequence, i.item_id) for i in items] == [(1, "m-1"), (2, "")]
    assert items == list(snapshot.items)
    assert sequences(list(retried.items)) == [1]  # the id it holds is not stored again
    assert sequences(list(later.items)) == [4]  # 3 was used, then popped: never again
