"""Session state is JSON text, kept exactly, over real gRPC on the memory and the Redis store.

``state_json`` replaced a ``google.protobuf.Struct``, whose numbers are all doubles: an
int written came back a float (``1`` as ``1.0``) and integers past 2**53 lost digits.
Now what is written is what is read: ints stay ints of any size, floats stay floats,
nested objects and lists keep their types. NaN and the infinities are not JSON and are
refused, as is state nested deeper than the limit, each naming where in the state it is.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import field_mask_pb2
from grpc import StatusCode

from agent_sessions.state_json import MAX_DEPTH
from tests.grpc_helpers import Stub, create, error_info, rpc_error, run, state_of


def typed(value: Any) -> Any:
    """``value`` with every scalar paired with its type, so that 1 and 1.0 compare unequal."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


async def get(stub: Stub, session: pb.Session) -> pb.Session:
    got: pb.Session = await stub.GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id=session.user_id)
    )
    return got


def update_state(session: pb.Session, text: str) -> pb.UpdateSessionRequest:
    return pb.UpdateSessionRequest(
        session=pb.Session(session_id=session.session_id, user_id=session.user_id, state_json=text),
        update_mask=field_mask_pb2.FieldMask(paths=["state_json"]),
    )


def nested_objects(depth: int) -> str:
    """A state ``depth`` objects deep (the state itself is 1), each under key "v"."""
    return '{"v":' * (depth - 1) + "{}" + "}" * (depth - 1)


# --- what is written is what is read --------------------------------------------------


async def test_an_int_comes_back_an_int(stub: Stub) -> None:
    session = await create(stub, state_json='{"count": 1}')

    got = await get(stub, session)

    assert got.state_json == '{"count":1}'
    assert typed(state_of(got)) == typed({"count": 1})


async def test_an_int_written_by_update_comes_back_an_int(stub: Stub) -> None:
    session = await create(stub)

    updated = await stub.UpdateSession(update_state(session, '{"count": 1}'))
    got = await get(stub, session)

    assert updated.state_json == got.state_json == '{"count":1}'


@pytest.mark.parametrize("number", [2**53 + 1, -(2**53) - 1, 2**64 + 1, 10**40 + 7], ids=str)
async def test_an_int_past_what_a_double_holds_keeps_every_digit(stub: Stub, number: int) -> None:
    session = await create(stub, state_json=json.dumps({"id": number}))

    got = await get(stub, session)

    assert typed(state_of(got)) == typed({"id": number})
    assert str(number) in got.state_json


async def test_an_int_past_2_53_written_by_update_keeps_every_digit(stub: Stub) -> None:
    session = await create(stub)

    await stub.UpdateSession(update_state(session, json.dumps({"id": 2**53 + 1})))
    got = await get(stub, session)

    assert state_of(got)["id"] == 2**53 + 1


async def test_a_float_stays_a_float(stub: Stub) -> None:
    floats = {"whole": 1.0, "half": 0.5, "tiny": 5e-324, "huge": 1.7976931348623157e308}
    session = await create(stub, state_json=json.dumps(floats))

    got = await get(stub, session)

    assert typed(state_of(got)) == typed(floats)
    assert '"whole":1.0' in got.state_json


async def test_nested_objects_and_lists_keep_their_types(stub: Stub) -> None:
    state = {
        "plan": {"steps": [1, 2.5, "three", True, None, {"n": 4, "x": [[], {}]}], "done": False},
        "empty_object": {},
        "empty_list": [],
        "text": "日本語 🙂",
    }
    session = await create(stub, state_json=json.dumps(state))

    got = await get(stub, session)

    assert typed(state_of(got)) == typed(state)


async def test_state_comes_back_as_compact_json_keeping_non_ascii_text(stub: Stub) -> None:
    session = await create(stub, state_json='{ "city" : "北京" ,\n "n" : [ 1 , 2 ] }')

    assert session.state_json == '{"city":"北京","n":[1,2]}'


@pytest.mark.parametrize("text", ["", "{}", "  {  }  "])
async def test_an_empty_state_reads_as_empty_text(stub: Stub, text: str) -> None:
    session = await create(stub, state_json=text)

    assert (await get(stub, session)).state_json == ""


async def test_state_keeps_its_types_through_a_run_and_the_listing(stub: Stub) -> None:
    state = {"count": 1, "ratio": 1.0, "id": 2**53 + 1, "tags": ["a", 2]}
    session = await create(stub, user_id="typed-lister", state_json=json.dumps(state))

    events = await run(stub, session, "Hello")
    listed = await stub.ListSessions(pb.ListSessionsRequest(user_id="typed-lister"))

    assert typed(state_of(events[-1].completed.session)) == typed(state)
    assert typed(state_of(listed.sessions[0])) == typed(state)


async def test_an_int_the_agent_writes_comes_back_an_int(stub: Stub) -> None:
    session = await create(stub, agent_id="scripted")  # counts turns in its state

    events = await run(stub, session, "one")

    assert typed(state_of(events[-1].completed.session)) == typed({"count": 1, "last_input": "one"})


# --- what is refused ------------------------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


@pytest.mark.parametrize("number", NON_FINITE)
async def test_a_non_finite_number_in_a_created_state_is_invalid_naming_its_key(
    stub: Stub, number: str
) -> None:
    text = '{"a": [1, {"b": ' + number + "}]}"

    error = await rpc_error(create(stub, session_id="not-finite", state_json=text))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == 'state_json["a"][1]["b"]'


async def test_a_refused_create_stores_nothing(stub: Stub) -> None:
    await rpc_error(create(stub, session_id="not-finite", state_json='{"a": NaN}'))

    error = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(session_id="not-finite", user_id="user-1"))
    )

    assert error.code() == StatusCode.NOT_FOUND


@pytest.mark.parametrize("number", NON_FINITE)
async def test_a_non_finite_number_in_an_updated_state_is_invalid_naming_its_key(
    stub: Stub, number: str
) -> None:
    session = await create(stub, state_json='{"a": 1}')

    error = await rpc_error(
        stub.UpdateSession(update_state(session, '{"a": {"b": ' + number + "}}"))
    )

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == 'session.state_json["a"]["b"]'
    assert await get(stub, session) == session


async def test_a_non_finite_number_in_an_imported_state_is_invalid_naming_its_key(
    stub: Stub,
) -> None:
    snapshot = pb.SessionSnapshot(
        session_id="imported", user_id="user-1", agent_id="echo", state_json='{"x": [NaN]}'
    )

    error = await rpc_error(stub.ImportSession(pb.ImportSessionRequest(snapshot=snapshot)))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == 'snapshot.state_json["x"][0]'


async def test_the_deepest_state_allowed_is_kept(stub: Stub) -> None:
    session = await create(stub, state_json=nested_objects(MAX_DEPTH))

    events = await run(stub, session, "hi")

    assert events[-1].completed.session.state_json == nested_objects(MAX_DEPTH)


async def test_objects_nested_too_deep_in_a_created_state_are_invalid_naming_where(
    stub: Stub,
) -> None:
    error = await rpc_error(create(stub, state_json=nested_objects(MAX_DEPTH + 1)))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "state_json" + '["v"]' * MAX_DEPTH


async def test_lists_nested_too_deep_in_a_created_state_are_invalid_naming_where(
    stub: Stub,
) -> None:
    lists = "[" * MAX_DEPTH + "]" * MAX_DEPTH  # with the state object: one level too many

    error = await rpc_error(create(stub, state_json='{"v": ' + lists + "}"))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == 'state_json["v"]' + "[0]" * (MAX_DEPTH - 1)


async def test_state_nested_past_what_the_parser_follows_is_invalid(stub: Stub) -> None:
    depth = 200_000  # far past Python's recursion limit, still a small message

    error = await rpc_error(create(stub, state_json='{"v": ' + "[" * depth + "]" * depth + "}"))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "state_json"


async def test_objects_nested_too_deep_in_an_updated_state_are_invalid(stub: Stub) -> None:
    session = await create(stub)

    error = await rpc_error(
        stub.UpdateSession(update_state(session, nested_objects(MAX_DEPTH + 1)))
    )

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "session.state_json" + '["v"]' * MAX_DEPTH
    assert await get(stub, session) == session


@pytest.mark.parametrize("text", ["[1, 2]", "1", "null", '"text"', "true", "{", "{'a': 1}"])
async def test_state_that_is_not_a_json_object_is_invalid(stub: Stub, text: str) -> None:
    error = await rpc_error(create(stub, state_json=text))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "state_json"


async def test_the_old_state_mask_path_is_invalid(stub: Stub) -> None:
    session = await create(stub)
    request = update_state(session, '{"a": 1}')
    request.update_mask.paths[:] = ["state"]

    error = await rpc_error(stub.UpdateSession(request))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "update_mask"


async def test_a_lone_surrogate_escape_in_state_is_invalid(stub: Stub) -> None:
    error = await rpc_error(create(stub, session_id="surrogate", state_json='{"a": "\\ud800"}'))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == 'state_json["a"]'


async def test_an_updated_state_over_the_size_limit_is_invalid_naming_the_field(
    stub: Stub,
) -> None:
    session = await create(stub)
    too_big = json.dumps({"k": "x" * (64 * 1024)})

    error = await rpc_error(stub.UpdateSession(update_state(session, too_big)))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "session.state_json"


# --- the old package name -------------------------------------------------------------


async def test_the_service_under_its_old_package_name_is_unimplemented(
    channel: grpc.aio.Channel,
) -> None:
    request = pb.GetSessionRequest(session_id="s-1", user_id="user-1").SerializeToString()
    old_get = channel.unary_unary(
        "/sessions.v1.SessionService/GetSession",
        request_serializer=None,  # the bytes go out as they are
        response_deserializer=None,
    )

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await old_get(request, timeout=5)

    assert raised.value.code() == StatusCode.UNIMPLEMENTED
