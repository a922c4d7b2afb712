"""Run: one turn streamed over real gRPC, and what is stored when it succeeds or not."""

from __future__ import annotations

import asyncio

import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from agent_sessions.model import TurnStatus
from agent_sessions.server import SessionServer
from agent_sessions.sessions.turns import TurnRunner
from tests.agents import ScriptedAgent
from tests.grpc_helpers import (
    Stub,
    create,
    error_info,
    reply_of,
    rpc_error,
    run,
    sent_error_info,
    turns,
)


async def test_run_streams_started_then_deltas_then_the_completed_turn(stub: Stub) -> None:
    session = await create(stub)

    events = await run(stub, session, "Hello")

    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "started" and kinds[-1] == "completed"
    assert set(kinds[1:-1]) == {"delta"}
    completed = events[-1].completed
    assert completed.turn.output == reply_of(events) == "Echo (turn 1): Hello"
    assert completed.turn.status == pb.TURN_STATUS_COMPLETED
    assert completed.session.turn_count == 1


async def test_reply_text_reaches_the_caller_while_the_agent_is_still_working(
    stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    session = await create(stub, agent_id="scripted")
    events = aiter(
        stub.Run(pb.RunRequest(session_id=session.session_id, user_id="user-1", input="wait"))
    )

    started, first = await anext(events), await anext(events)
    scripted_agent.release.set()
    rest = [event async for event in events]

    assert started.started.turn_index == 1
    assert first.delta.text == "first half, "
    assert reply_of(rest) == "second half"
    assert rest[-1].completed.turn.output == "first half, second half"


async def test_a_running_turn_is_listed_in_progress_with_the_input(
    stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    session = await create(stub, agent_id="scripted")
    running = asyncio.ensure_future(run(stub, session, "wait"))
    await scripted_agent.started.wait()

    [turn] = await turns(stub, session)
    scripted_agent.release.set()
    await running

    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_IN_PROGRESS, "wait", "")


async def test_the_agent_sees_the_previous_turn(stub: Stub) -> None:
    session = await create(stub)
    await run(stub, session, "How's the weather in Shanghai?")

    events = await run(stub, session, "What about Beijing?")

    assert reply_of(events) == (
        'Echo (turn 2): What about Beijing? (previous: "How\'s the weather in Shanghai?")'
    )


async def test_input_and_reply_are_stored_together_as_one_turn(stub: Stub) -> None:
    session = await create(stub)
    await run(stub, session, "Hello", request_id="req-1")

    [turn] = await turns(stub, session)

    assert (turn.index, turn.status, turn.input) == (1, pb.TURN_STATUS_COMPLETED, "Hello")
    assert turn.output == "Echo (turn 1): Hello"
    assert turn.request_id == "req-1"
    assert turn.complete_time.ToMilliseconds() >= turn.create_time.ToMilliseconds()


async def test_agent_state_changes_are_committed_with_the_turn(stub: Stub) -> None:
    session = await create(stub, agent_id="scripted")
    await run(stub, session, "one")

    events = await run(stub, session, "two")

    assert reply_of(events) == "count=2 history=1"
    assert events[-1].completed.session.state_json == '{"count":2,"last_input":"two"}'


async def test_an_agent_failing_mid_stream_fails_the_turn_and_keeps_the_input(stub: Stub) -> None:
    session = await create(stub, agent_id="scripted")

    error = await rpc_error(run(stub, session, "explode"))

    assert error.code() == StatusCode.INTERNAL
    assert error_info(error).reason == "AGENT_FAILED"
    assert error_info(error).metadata["turn_index"] == "1"
    [turn] = await turns(stub, session)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_FAILED, "explode", "")
    assert "502" in turn.error
    got = await stub.GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id="user-1")
    )
    assert (got.turn_count, got.state_json) == (0, "")


async def test_the_next_run_after_a_failure_works(stub: Stub) -> None:
    session = await create(stub, agent_id="scripted")
    await rpc_error(run(stub, session, "explode"))

    events = await run(stub, session, "again")

    assert events[-1].completed.turn.index == 2
    assert reply_of(events) == "count=1 history=0"


async def test_cancelling_a_run_cancels_the_agent_and_records_the_turn_cancelled(
    stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    session = await create(stub, agent_id="scripted")
    call = stub.Run(pb.RunRequest(session_id=session.session_id, user_id="user-1", input="hang"))
    first = await anext(aiter(call))
    assert first.WhichOneof("event") == "started"
    await scripted_agent.started.wait()

    call.cancel()

    await asyncio.wait_for(scripted_agent.cancelled.wait(), timeout=5)
    for _ in range(50):
        [turn] = await turns(stub, session)
        if turn.status != pb.TURN_STATUS_IN_PROGRESS:
            break
        await asyncio.sleep(0.02)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_CANCELLED, "hang", "")
    events = await run(stub, session, "still usable?")
    assert events[-1].completed.turn.index == 2


async def test_max_turns_reached_is_failed_precondition_naming_the_limit(stub: Stub) -> None:
    session = await create(stub, max_turns=1)
    await run(stub, session, "the only turn")

    error = await rpc_error(run(stub, session, "one more"))

    assert error.code() == StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "MAX_TURNS_REACHED"
    assert error_info(error).metadata["max_turns"] == "1"


async def test_a_retried_request_id_replays_the_turn_instead_of_running_it_again(
    stub: Stub,
) -> None:
    session = await create(stub, agent_id="scripted")
    first = await run(stub, session, "charge my card", request_id="once")

    again = await run(stub, session, "charge my card", request_id="once")

    assert again[0].started.replayed
    assert reply_of(again) == reply_of(first)
    assert again[-1].completed.turn.index == 1
    assert again[-1].completed.session.turn_count == 1


async def test_a_second_run_while_one_is_in_progress_is_aborted(
    stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    session = await create(stub, agent_id="scripted")
    running = asyncio.ensure_future(run(stub, session, "pause"))
    await scripted_agent.started.wait()

    error = await rpc_error(run(stub, session, "me too"))

    assert error.code() == StatusCode.ABORTED
    assert error_info(error).reason == "TURN_IN_PROGRESS"
    assert reply_of(await running) == "first half, second half"


async def test_list_turns_pages_oldest_first_and_newest_first(stub: Stub) -> None:
    session = await create(stub)
    for i in range(5):
        await run(stub, session, f"q{i}")

    async def all_indexes(order_by: str) -> list[int]:
        seen: list[int] = []
        token = ""
        while True:
            page = await stub.ListTurns(
                pb.ListTurnsRequest(
                    session_id=session.session_id,
                    user_id="user-1",
                    page_size=2,
                    page_token=token,
                    order_by=order_by,
                )
            )
            seen += [t.index for t in page.turns]
            token = page.next_page_token
            if not token:
                return seen

    assert await all_indexes("") == [1, 2, 3, 4, 5]
    assert await all_indexes("index desc") == [5, 4, 3, 2, 1]


async def test_an_unknown_order_by_is_invalid(stub: Stub) -> None:
    session = await create(stub)
    error = await rpc_error(
        stub.ListTurns(
            pb.ListTurnsRequest(session_id=session.session_id, user_id="user-1", order_by="time")
        )
    )
    assert error.code() == StatusCode.INVALID_ARGUMENT


async def test_a_running_turn_finishes_within_the_shutdown_grace_period(
    server: SessionServer, stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    session = await create(stub, agent_id="scripted")
    running = asyncio.ensure_future(run(stub, session, "pause"))
    await scripted_agent.started.wait()

    await server.stop(grace_s=5)

    assert reply_of(await running) == "first half, second half"


async def test_a_run_still_going_when_the_grace_period_ends_is_cancelled(
    server: SessionServer, stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    session = await create(stub, agent_id="scripted")
    running = asyncio.ensure_future(run(stub, session, "hang"))
    await scripted_agent.started.wait()

    await server.stop(grace_s=0.2)

    error = await rpc_error(running)
    assert error.code() in (StatusCode.UNAVAILABLE, StatusCode.CANCELLED)
    assert scripted_agent.cancelled.is_set()
    # Read back through the stopped server's store (memory keeps it; Redis reconnects).
    page = await server.store.list_turns(
        user_id="user-1",
        session_id=session.session_id,
        start_index=None,
        limit=1,
        newest_first=False,
        include_archived=False,
        now_ms=session.create_time.ToMilliseconds(),
    )
    await server.store.close()
    assert (page.turns[0].status, page.turns[0].input) == (TurnStatus.CANCELLED, "hang")


async def test_a_failure_of_the_service_itself_is_internal_not_the_agents(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await create(stub, agent_id="scripted")

    def broken(*_: object) -> None:
        raise RuntimeError("a bug in the session logic")

    monkeypatch.setattr(TurnRunner, "_check_agent_state", broken)
    error = await rpc_error(run(stub, session, "one"))

    assert error.code() == StatusCode.INTERNAL
    assert sent_error_info(error) is None  # no AGENT_FAILED
    assert "a bug in the session logic" not in (error.details() or "")
    [turn] = await turns(stub, session)
    assert (turn.status, turn.input) == (pb.TURN_STATUS_FAILED, "one")
    assert turn.error.startswith("internal error")


async def test_an_agent_sending_an_unknown_event_fails_the_turn_as_the_agents_fault(
    stub: Stub,
) -> None:
    session = await create(stub, agent_id="scripted")

    error = await rpc_error(run(stub, session, "odd event"))

    assert error.code() == StatusCode.INTERNAL
    assert error_info(error).reason == "AGENT_FAILED"
    assert error_info(error).metadata["turn_index"] == "1"
