"""The session lifecycle over real gRPC, against the memory and the Redis store."""

from __future__ import annotations

import asyncio

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import duration_pb2, field_mask_pb2
from grpc import StatusCode

from tests.grpc_helpers import Stub, create, error_info, refusal, rpc_error, run, state_of


async def test_create_applies_the_documented_defaults(stub: Stub) -> None:
    session = await create(stub)

    assert session.status == pb.SESSION_STATUS_ACTIVE
    assert session.ttl.ToSeconds() == 24 * 3600
    assert session.idle_timeout.ToSeconds() == 30 * 60
    assert session.max_turns == 0
    assert session.etag
    assert (
        session.expire_time.ToMilliseconds() == session.create_time.ToMilliseconds() + 30 * 60_000
    )


async def test_generated_session_ids_carry_128_random_bits(stub: Stub) -> None:
    ids = {(await create(stub)).session_id for _ in range(20)}

    assert len(ids) == 20
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)  # 128 bits in hex


async def test_create_keeps_the_requested_settings_state_and_labels(stub: Stub) -> None:
    session = await create(
        stub,
        session_id="weather-chat",
        ttl=duration_pb2.Duration(seconds=48 * 3600),
        idle_timeout=duration_pb2.Duration(seconds=600),
        max_turns=100,
        state_json='{"city": "Shanghai", "units": "metric"}',
        labels={"channel": "web"},
    )
    got = await stub.GetSession(pb.GetSessionRequest(session_id="weather-chat", user_id="user-1"))

    assert got == session
    assert (got.ttl.seconds, got.idle_timeout.seconds, got.max_turns) == (48 * 3600, 600, 100)
    assert state_of(got) == {"city": "Shanghai", "units": "metric"}
    assert dict(got.labels) == {"channel": "web"}


async def test_a_taken_session_id_is_already_exists(stub: Stub) -> None:
    await create(stub, session_id="mine")

    error = await rpc_error(create(stub, session_id="mine"))

    assert error.code() == StatusCode.ALREADY_EXISTS
    assert error_info(error).reason == "SESSION_ALREADY_EXISTS"


async def test_another_users_session_is_not_found(stub: Stub) -> None:
    session = await create(stub, user_id="alice")

    error = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(session_id=session.session_id, user_id="mallory"))
    )

    assert error.code() == StatusCode.NOT_FOUND
    assert error_info(error).reason == "SESSION_NOT_FOUND"
    assert error_info(error).metadata["session_id"] == session.session_id


async def test_list_sessions_pages_through_a_users_sessions_newest_activity_first(
    stub: Stub,
) -> None:
    made = []
    for _ in range(5):
        made.append(await create(stub, user_id="lister"))
        await asyncio.sleep(0.002)  # distinct activity times, so the order is known
    await create(stub, user_id="someone-else")
    await run(stub, made[0], "I am active again")

    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListSessions(
            pb.ListSessionsRequest(user_id="lister", page_size=2, page_token=token)
        )
        seen += [s.session_id for s in page.sessions]
        token = page.next_page_token
        if not token:
            break

    expected = [made[0], *made[:0:-1]]
    assert seen == [s.session_id for s in expected]


async def test_list_sessions_filters_by_agent(stub: Stub) -> None:
    await create(stub, user_id="u", agent_id="weather")
    await create(stub, user_id="u", agent_id="travel")

    page = await stub.ListSessions(pb.ListSessionsRequest(user_id="u", agent_id="travel"))

    assert [s.agent_id for s in page.sessions] == ["travel"]


async def test_a_page_token_from_another_query_is_invalid(stub: Stub) -> None:
    for _ in range(2):
        await create(stub, user_id="u")
    page = await stub.ListSessions(pb.ListSessionsRequest(user_id="u", page_size=1))

    error = await rpc_error(
        stub.ListSessions(pb.ListSessionsRequest(user_id="v", page_token=page.next_page_token))
    )

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "page_token")


async def test_update_changes_only_the_masked_fields(stub: Stub) -> None:
    session = await create(stub, labels={"channel": "web"})
    change = pb.Session(
        session_id=session.session_id,
        user_id="user-1",
        max_turns=3,
        state_json='{"city": "Beijing"}',
    )
    change.labels["channel"] = "ignored"

    updated = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session=change, update_mask=field_mask_pb2.FieldMask(paths=["state_json", "max_turns"])
        )
    )

    assert state_of(updated) == {"city": "Beijing"}
    assert updated.max_turns == 3
    assert dict(updated.labels) == {"channel": "web"}
    assert updated.etag != session.etag


async def test_update_with_a_stale_etag_is_aborted(stub: Stub) -> None:
    session = await create(stub)
    await run(stub, session, "this changes the session")
    stale = pb.Session(session_id=session.session_id, user_id="user-1", etag=session.etag)

    error = await rpc_error(
        stub.UpdateSession(
            pb.UpdateSessionRequest(
                session=stale, update_mask=field_mask_pb2.FieldMask(paths=["labels"])
            )
        )
    )

    assert error.code() == StatusCode.ABORTED
    assert error_info(error).reason == "ETAG_MISMATCH"


async def test_update_of_an_output_only_field_is_invalid(stub: Stub) -> None:
    session = await create(stub)
    change = pb.Session(session_id=session.session_id, user_id="user-1", turn_count=9)

    error = await rpc_error(
        stub.UpdateSession(
            pb.UpdateSessionRequest(
                session=change, update_mask=field_mask_pb2.FieldMask(paths=["turn_count"])
            )
        )
    )

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "update_mask")


async def test_update_without_a_mask_is_invalid(stub: Stub) -> None:
    session = await create(stub)

    error = await rpc_error(stub.UpdateSession(pb.UpdateSessionRequest(session=session)))

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "update_mask")


async def test_an_ended_session_is_readable_but_runs_no_turns(stub: Stub) -> None:
    session = await create(stub)

    ended = await stub.EndSession(
        pb.EndSessionRequest(session_id=session.session_id, user_id="user-1")
    )
    error = await rpc_error(run(stub, session, "anyone there?"))

    assert ended.status == pb.SESSION_STATUS_ENDED
    assert error.code() == StatusCode.FAILED_PRECONDITION
    assert error_info(error).reason == "SESSION_ENDED"
    got = await stub.GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id="user-1")
    )
    assert got.status == pb.SESSION_STATUS_ENDED


async def test_a_deleted_session_is_not_found(stub: Stub) -> None:
    session = await create(stub)

    await stub.DeleteSession(
        pb.DeleteSessionRequest(session_id=session.session_id, user_id="user-1")
    )
    error = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(session_id=session.session_id, user_id="user-1"))
    )

    assert error.code() == StatusCode.NOT_FOUND


async def test_an_expired_session_is_not_found_and_leaves_the_listing(stub: Stub) -> None:
    session = await create(
        stub, user_id="brief", idle_timeout=duration_pb2.Duration(nanos=300_000_000)
    )
    await asyncio.sleep(0.4)

    error = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(session_id=session.session_id, user_id="brief"))
    )
    page = await stub.ListSessions(pb.ListSessionsRequest(user_id="brief"))

    assert error.code() == StatusCode.NOT_FOUND
    assert list(page.sessions) == []


async def test_a_create_retried_with_its_request_id_returns_the_same_session(stub: Stub) -> None:
    first = await create(stub, session_id="chat-7", request_id="create-7")

    again = await create(stub, session_id="chat-7", request_id="create-7")
    other = await rpc_error(create(stub, session_id="chat-7", request_id="create-8"))

    assert again == first
    assert other.code() == StatusCode.ALREADY_EXISTS


async def test_a_create_request_id_needs_a_client_chosen_session_id(stub: Stub) -> None:
    error = await rpc_error(create(stub, request_id="create-9"))

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "request_id")
