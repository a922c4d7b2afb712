"""ImportSession over real gRPC, against the memory and the Redis store: restoring an export."""

from __future__ import annotations

import time
from typing import Any

import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import duration_pb2
from grpc import StatusCode

from tests.grpc_helpers import Stub, create, error_info, refusal, reply_of, rpc_error, run

MAX_IMPORT_TURNS = 10_000


async def export(stub: Stub, session: pb.Session) -> pb.SessionSnapshot:
    """What an operator tool exports: the session as read, and every turn, page by page."""
    ids: dict[str, str] = {"session_id": session.session_id, "user_id": session.user_id}
    got: pb.Session = await stub.GetSession(pb.GetSessionRequest(**ids))
    history: list[pb.Turn] = []
    token = ""
    while True:
        page = await stub.ListTurns(
            pb.ListTurnsRequest(
                session_id=session.session_id,
                user_id=session.user_id,
                page_size=2,
                page_token=token,
            )
        )
        history += page.turns
        token = page.next_page_token
        if not token:
            return pb.SessionSnapshot(
                session_id=got.session_id,
                user_id=got.user_id,
                agent_id=got.agent_id,
                status=got.status,
                ttl=got.ttl,
                idle_timeout=got.idle_timeout,
                max_turns=got.max_turns,
                state_json=got.state_json,
                labels=got.labels,
                summary=got.summary,
                folded_turns=got.folded_turns,
                turn_count=got.turn_count,
                turns=history,
            )


def a_turn(index: int, status: pb.TurnStatus = pb.TURN_STATUS_COMPLETED, **fields: Any) -> pb.Turn:
    values: dict[str, Any] = {"input": f"q{index}"}
    if status == pb.TURN_STATUS_COMPLETED:
        values["output"] = f"a{index}"
    values.update(fields)
    return pb.Turn(index=index, status=status, **values)


def an_import(
    session_id: str = "restored", turns: list[pb.Turn] | None = None, **fields: Any
) -> pb.ImportSessionRequest:
    history = [a_turn(1), a_turn(2)] if turns is None else turns
    return pb.ImportSessionRequest(
        snapshot=pb.SessionSnapshot(
            session_id=session_id, user_id="user-1", agent_id="echo", turns=history, **fields
        )
    )


async def test_an_exported_session_imported_under_another_user_restores_its_history(
    stub: Stub,
) -> None:
    original = await create(
        stub,
        session_id="weather-chat",
        ttl=duration_pb2.Duration(seconds=48 * 3600),
        max_turns=10,
        state_json='{"city":"Shanghai"}',
        labels={"channel": "web"},
    )
    await run(stub, original, "Hello", request_id="req-1")
    await run(stub, original, "What can you do?")
    await run(stub, original, "How's the weather in Shanghai?", request_id="req-3")
    snapshot = await export(stub, original)
    snapshot.user_id = "user-2"  # user ids are part of the key: this is a new session

    imported = await stub.ImportSession(pb.ImportSessionRequest(snapshot=snapshot))
    restored = await stub.ListTurns(
        pb.ListTurnsRequest(session_id="weather-chat", user_id="user-2")
    )

    assert (imported.session_id, imported.user_id, imported.agent_id) == (
        "weather-chat",
        "user-2",
        "echo",
    )
    assert (imported.ttl, imported.idle_timeout, imported.max_turns) == (
        snapshot.ttl,
        snapshot.idle_timeout,
        10,
    )
    assert (imported.state_json, dict(imported.labels)) == (
        '{"city":"Shanghai"}',
        {"channel": "web"},
    )
    assert (imported.turn_count, imported.total_turns) == (3, 3)
    assert list(restored.turns) == list(snapshot.turns)


async def test_the_next_run_after_an_import_continues_the_history(stub: Stub) -> None:
    original = await create(stub)
    await run(stub, original, "Hello")
    await run(stub, original, "How's the weather in Shanghai?")
    snapshot = await export(stub, original)
    snapshot.user_id = "user-2"
    imported = await stub.ImportSession(pb.ImportSessionRequest(snapshot=snapshot))

    events = await run(stub, imported, "What about Beijing?")

    assert events[0].started.turn_index == 3
    assert reply_of(events) == (
        'Echo (turn 3): What about Beijing? (previous: "How\'s the weather in Shanghai?")'
    )
    assert events[-1].completed.session.turn_count == 3


async def test_a_run_with_the_request_id_of_an_imported_turn_replays_it(stub: Stub) -> None:
    request = an_import(turns=[a_turn(1, request_id="req-1", output="stored reply")])
    imported = await stub.ImportSession(request)

    events = await run(stub, imported, "q1", request_id="req-1")

    assert events[0].started.replayed
    assert reply_of(events) == "stored reply"


async def test_a_request_id_retried_after_a_failed_turn_replays_the_retry(stub: Stub) -> None:
    failed = a_turn(1, pb.TURN_STATUS_FAILED, request_id="req-1", error="agent failed")
    retried = a_turn(2, request_id="req-1", output="the retry's reply")
    imported = await stub.ImportSession(an_import(turns=[failed, retried]))

    events = await run(stub, imported, "q2", request_id="req-1")

    assert (events[0].started.turn_index, events[0].started.replayed) == (2, True)
    assert reply_of(events) == "the retry's reply"


async def test_an_import_starts_a_fresh_life(stub: Stub) -> None:
    before_ms = time.time_ns() // 1_000_000

    imported = await stub.ImportSession(an_import())

    assert imported.create_time.ToMilliseconds() >= before_ms
    assert imported.last_activity_time == imported.create_time
    assert imported.etag == 'W/"1"'


async def test_an_import_of_an_unspecified_status_is_active(stub: Stub) -> None:
    imported = await stub.ImportSession(an_import(status=pb.SESSION_STATUS_UNSPECIFIED))

    assert imported.status == pb.SESSION_STATUS_ACTIVE


async def test_an_imported_turn_count_counts_no_turns_beyond_the_history_and_folded_ones(
    stub: Stub,
) -> None:
    imported = await stub.ImportSession(an_import(turn_count=99))

    assert (imported.turn_count, imported.total_turns) == (2, 2)


async def test_an_import_applies_the_create_defaults_when_settings_are_unset(stub: Stub) -> None:
    imported = await stub.ImportSession(an_import())

    assert imported.ttl.ToSeconds() == 24 * 3600
    assert imported.idle_timeout.ToSeconds() == 30 * 60
    assert imported.max_turns == 0
    assert (
        imported.expire_time.ToMilliseconds() == imported.create_time.ToMilliseconds() + 30 * 60_000
    )


async def test_an_imported_ended_session_stays_ended(stub: Stub) -> None:
    imported = await stub.ImportSession(an_import(status=pb.SESSION_STATUS_ENDED))

    error = await rpc_error(run(stub, imported, "more?"))

    assert imported.status == pb.SESSION_STATUS_ENDED
    assert error.code() == StatusCode.FAILED_PRECONDITION


def _without_session_id() -> pb.ImportSessionRequest:
    return an_import(session_id="")


def _with_a_gap() -> pb.ImportSessionRequest:
    return an_import(turns=[a_turn(1), a_turn(3)])


def _with_a_turn_in_progress() -> pb.ImportSessionRequest:
    return an_import(turns=[a_turn(1), a_turn(2, pb.TURN_STATUS_IN_PROGRESS)])


def _with_a_turn_of_no_status() -> pb.ImportSessionRequest:
    return an_import(turns=[a_turn(1, pb.TURN_STATUS_UNSPECIFIED)])


def _with_output_on_a_failed_turn() -> pb.ImportSessionRequest:
    return an_import(turns=[a_turn(1), a_turn(2, pb.TURN_STATUS_FAILED, output="half a reply")])


def _with_an_empty_input() -> pb.ImportSessionRequest:
    return an_import(turns=[a_turn(1, input="  ")])


def _with_an_oversized_input() -> pb.ImportSessionRequest:
    return an_import(turns=[a_turn(1), a_turn(2, input="x" * (32 * 1024 + 1))])


def _with_a_request_id_after_its_completed_turn() -> pb.ImportSessionRequest:
    # Run would have replayed turn 1 rather than record turn 2.
    return an_import(turns=[a_turn(1, request_id="req-1"), a_turn(2, request_id="req-1")])


def _with_too_many_turns() -> pb.ImportSessionRequest:
    request = an_import(turns=[])
    # Tiny turns (about ten bytes each), so the request stays small.
    request.snapshot.turns.extend(
        pb.Turn(index=i, status=pb.TURN_STATUS_CANCELLED, input="x")
        for i in range(1, MAX_IMPORT_TURNS + 2)
    )
    return request


def _with_bad_labels() -> pb.ImportSessionRequest:
    return an_import(labels={"Bad Key": "x"})


def _with_a_zero_ttl() -> pb.ImportSessionRequest:
    return an_import(ttl=duration_pb2.Duration(seconds=0))


def _with_a_state_that_is_not_an_object() -> pb.ImportSessionRequest:
    return an_import(state_json="[1, 2]")


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (_without_session_id, "snapshot.session_id"),
        (_with_a_gap, "snapshot.turns[1].index"),
        (_with_a_turn_in_progress, "snapshot.turns[1].status"),
        (_with_a_turn_of_no_status, "snapshot.turns[0].status"),
        (_with_output_on_a_failed_turn, "snapshot.turns[1].output"),
        (_with_an_empty_input, "snapshot.turns[0].input"),
        (_with_an_oversized_input, "snapshot.turns[1].input"),
        (_with_a_request_id_after_its_completed_turn, "snapshot.turns[1].request_id"),
        (_with_too_many_turns, "snapshot.turns"),
        (_with_bad_labels, "snapshot.labels['Bad Key']"),
        (_with_a_zero_ttl, "snapshot.ttl"),
        (_with_a_state_that_is_not_an_object, "snapshot.state_json"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
async def test_a_malformed_import_is_invalid_argument_naming_the_field(
    stub: Stub, build: Any, field: str
) -> None:
    error = await rpc_error(stub.ImportSession(build()))

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", field)


async def test_a_refused_import_stores_nothing(stub: Stub) -> None:
    request = an_import(
        session_id="half", turns=[a_turn(1), a_turn(2, pb.TURN_STATUS_FAILED, output="oops")]
    )

    await rpc_error(stub.ImportSession(request))
    error = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(session_id="half", user_id="user-1"))
    )

    assert error.code() == StatusCode.NOT_FOUND


async def test_an_import_under_a_taken_id_is_already_exists(stub: Stub) -> None:
    await create(stub, session_id="taken")

    error = await rpc_error(stub.ImportSession(an_import(session_id="taken")))

    assert error.code() == StatusCode.ALREADY_EXISTS
    assert error_info(error).reason == "SESSION_ALREADY_EXISTS"


async def test_an_import_of_the_most_turns_allowed_is_stored_whole(stub: Stub) -> None:
    request = an_import(turns=[])
    request.snapshot.turns.extend(
        pb.Turn(index=i, status=pb.TURN_STATUS_COMPLETED, input="x", output="y")
        for i in range(1, MAX_IMPORT_TURNS + 1)
    )

    imported = await stub.ImportSession(request)
    events = await run(stub, imported, "one more")

    assert (imported.turn_count, imported.total_turns) == (MAX_IMPORT_TURNS, MAX_IMPORT_TURNS)
    assert events[0].started.turn_index == MAX_IMPORT_TURNS + 1


async def test_an_import_whose_history_would_leave_no_room_for_runs_is_invalid(
    stub: Stub,
) -> None:
    # Indexes are int32 on the wire: a history ending near 2**31 - 1 (this one could
    # grow to it by import alone) would make a later Run's index unsendable, and every
    # read of the session after it INTERNAL.
    folded = 2**31 - 1 - 10_000
    request = an_import(turns=[a_turn(folded + 1)], folded_turns=folded)

    error = await rpc_error(stub.ImportSession(request))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "snapshot.folded_turns"


async def test_a_session_imported_with_the_most_folded_turns_keeps_running(stub: Stub) -> None:
    imported = await stub.ImportSession(
        an_import(turns=[a_turn(1_000_000_001)], folded_turns=1_000_000_000)
    )

    events = await run(stub, imported, "next")

    assert events[0].started.turn_index == 1_000_000_002
    got = await stub.GetSession(
        pb.GetSessionRequest(session_id=imported.session_id, user_id=imported.user_id)
    )
    assert got.total_turns == 1_000_000_002
