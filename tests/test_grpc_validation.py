"""Malformed requests: INVALID_ARGUMENT naming the field to fix, and no write."""

from __future__ import annotations

import re

import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import duration_pb2
from grpc import StatusCode

from tests.grpc_helpers import Stub, create, error_info, refusal, rpc_error, run, turns

INVALID = (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"user_id": "", "agent_id": "echo"}, "user_id"),
        ({"user_id": "u", "agent_id": ""}, "agent_id"),
        ({"user_id": "u" * 129, "agent_id": "echo"}, "user_id"),
        ({"user_id": "u{1}", "agent_id": "echo"}, "user_id"),
        ({"user_id": "u", "agent_id": "echo", "session_id": "a b"}, "session_id"),
        ({"user_id": "u", "agent_id": "echo", "session_id": "s" * 200}, "session_id"),
        ({"user_id": "u", "agent_id": "echo", "max_turns": -1}, "max_turns"),
        ({"user_id": "u", "agent_id": "echo", "labels": {"Bad Key": "x"}}, "labels['Bad Key']"),
    ],
)
async def test_create_refuses_malformed_fields(
    stub: Stub, request_fields: dict[str, object], field: str
) -> None:
    error = await rpc_error(stub.CreateSession(pb.CreateSessionRequest(**request_fields)))  # type: ignore[arg-type]

    assert refusal(error) == (*INVALID, field)


@pytest.mark.parametrize("field", ["ttl", "idle_timeout"])
async def test_create_refuses_negative_durations(stub: Stub, field: str) -> None:
    request = pb.CreateSessionRequest(user_id="u", agent_id="echo")
    getattr(request, field).CopyFrom(duration_pb2.Duration(seconds=-5))

    error = await rpc_error(stub.CreateSession(request))

    assert refusal(error) == (*INVALID, field)


async def test_create_refuses_a_ttl_beyond_the_limit(stub: Stub) -> None:
    request = pb.CreateSessionRequest(
        user_id="u", agent_id="echo", ttl=duration_pb2.Duration(seconds=400 * 86400)
    )
    error = await rpc_error(stub.CreateSession(request))
    assert refusal(error) == (*INVALID, "ttl")


async def test_run_refuses_empty_input_and_records_nothing(stub: Stub) -> None:
    session = await create(stub)

    error = await rpc_error(run(stub, session, "   "))

    assert refusal(error) == (*INVALID, "input")
    assert await turns(stub, session) == []


async def test_run_refuses_oversized_input_saying_the_limit(stub: Stub) -> None:
    session = await create(stub)

    error = await rpc_error(run(stub, session, "x" * (32 * 1024 + 1)))

    assert refusal(error) == (*INVALID, "input")
    assert "32768 bytes" in (error.details() or "")
    assert await turns(stub, session) == []


async def test_run_on_an_unknown_session_is_not_found(stub: Stub) -> None:
    ghost = pb.Session(session_id="no-such-session", user_id="user-1")
    error = await rpc_error(run(stub, ghost, "hello?"))
    assert refusal(error) == (StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", "")


async def test_run_as_another_user_is_not_found(stub: Stub) -> None:
    session = await create(stub, user_id="alice")
    intruder = pb.Session(session_id=session.session_id, user_id="mallory")

    error = await rpc_error(run(stub, intruder, "let me in"))

    assert refusal(error) == (StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", "")
    assert await turns(stub, session) == []


async def test_a_negative_page_size_is_invalid(stub: Stub) -> None:
    error = await rpc_error(stub.ListSessions(pb.ListSessionsRequest(user_id="u", page_size=-1)))
    assert refusal(error) == (*INVALID, "page_size")


async def test_a_forged_page_token_is_invalid(stub: Stub) -> None:
    error = await rpc_error(
        stub.ListSessions(pb.ListSessionsRequest(user_id="u", page_token="not-a-token!"))
    )
    assert refusal(error) == (*INVALID, "page_token")


async def test_a_ttl_beyond_the_limit_is_said_in_days(stub: Stub) -> None:
    request = pb.CreateSessionRequest(
        user_id="u", agent_id="echo", ttl=duration_pb2.Duration(seconds=100_000_000)
    )

    error = await rpc_error(stub.CreateSession(request))

    assert refusal(error) == (*INVALID, "ttl")
    # The value and the limit, both in days (not 100000000 s, not 2592000 s).
    assert re.findall(r"[\d.]+ \w+", error.details() or "") == ["1157.4 days", "30 days"]


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(10, 2_000_000_000), (10, -1), (0, 1_000_000_000), (-1, 5)]
)
async def test_a_duration_with_out_of_range_nanos_is_invalid(
    stub: Stub, seconds: int, nanos: int
) -> None:
    request = pb.CreateSessionRequest(
        user_id="u", agent_id="echo", ttl=duration_pb2.Duration(seconds=seconds, nanos=nanos)
    )

    error = await rpc_error(stub.CreateSession(request))

    assert refusal(error) == (*INVALID, "ttl")


LONG = "x" * 20_000


async def _assert_quoted_short(call: object) -> None:
    # A default grpcio client cannot read a status whose metadata passes 16 KiB: it
    # would see RESOURCE_EXHAUSTED instead of the INVALID_ARGUMENT sent.
    error = await rpc_error(call)  # type: ignore[arg-type]

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert len(error.details() or "") < 400
    assert all(len(value) < 300 for value in error_info(error).metadata.values())


async def test_a_huge_order_by_is_quoted_short(stub: Stub) -> None:
    session = await create(stub)
    await _assert_quoted_short(
        stub.ListTurns(
            pb.ListTurnsRequest(
                session_id=session.session_id, user_id=session.user_id, order_by=LONG
            )
        )
    )


async def test_a_huge_label_key_is_quoted_short(stub: Stub) -> None:
    await _assert_quoted_short(
        stub.CreateSession(
            pb.CreateSessionRequest(user_id="u", agent_id="echo", labels={LONG: "v"})
        )
    )


async def test_a_huge_update_mask_path_is_quoted_short(stub: Stub) -> None:
    session = await create(stub)
    request = pb.UpdateSessionRequest(session=session)
    request.update_mask.paths.append(LONG)

    await _assert_quoted_short(stub.UpdateSession(request))


async def test_a_huge_etag_is_refused_quoted_short(stub: Stub) -> None:
    session = await create(stub)
    request = pb.UpdateSessionRequest(
        session=pb.Session(
            session_id=session.session_id, user_id=session.user_id, etag=LONG, max_turns=3
        )
    )
    request.update_mask.paths.append("max_turns")

    error = await rpc_error(stub.UpdateSession(request))

    assert error.code() == StatusCode.ABORTED
    assert len(error.details() or "") < 400
