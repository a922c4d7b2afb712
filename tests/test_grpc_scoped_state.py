"""Apps and scoped state over real gRPC: ``user:`` and ``app:`` keys shared across
sessions, ``temp:`` keys never stored, and apps that keep all of it apart."""

from __future__ import annotations

import json
from typing import Any

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import field_mask_pb2
from grpc import StatusCode

from tests.grpc_helpers import Stub, create, refusal, reply_of, rpc_error, run, state_of

USER = "user-1"


def message(role: str, text: str) -> pb.Item:
    payload = json.dumps({"role": role, "content": text})
    return pb.Item(type=pb.ITEM_TYPE_MESSAGE, role=role, payload_json=payload)


async def external(stub: Stub, user_id: str = USER, **fields: Any) -> pb.Session:
    return await create(
        stub, user_id=user_id, agent_id="my-framework-agent", external_agent=True, **fields
    )


async def append_state(
    stub: Stub, session: pb.Session, delta: dict[str, Any], removals: tuple[str, ...] = ()
) -> pb.AppendItemsResponse:
    response: pb.AppendItemsResponse = await stub.AppendItems(
        pb.AppendItemsRequest(
            app=session.app,
            session_id=session.session_id,
            user_id=session.user_id,
            items=[message("user", "hi")],
            state_delta_json=json.dumps(delta),
            state_removals=list(removals),
        )
    )
    return response


async def state_now(stub: Stub, session: pb.Session) -> dict[str, Any]:
    return state_of(
        await stub.GetSession(
            pb.GetSessionRequest(
                app=session.app, session_id=session.session_id, user_id=session.user_id
            )
        )
    )


async def test_a_user_key_is_seen_by_every_session_of_the_user(stub: Stub) -> None:
    first, second = await external(stub), await external(stub)

    await append_state(stub, first, {"user:name": "Ada", "topic": "weather"})

    assert await state_now(stub, second) == {"user:name": "Ada"}
    assert await state_now(stub, first) == {"topic": "weather", "user:name": "Ada"}


async def test_a_user_key_is_not_seen_by_another_user(stub: Stub) -> None:
    mine, theirs = await external(stub), await external(stub, user_id="user-2")

    await append_state(stub, mine, {"user:name": "Ada"})

    assert await state_now(stub, theirs) == {}


async def test_an_app_key_is_seen_by_every_user_of_the_app(stub: Stub) -> None:
    mine, theirs = await external(stub), await external(stub, user_id="user-2")

    await append_state(stub, mine, {"app:greeting": "Hello"})

    assert await state_now(stub, theirs) == {"app:greeting": "Hello"}


async def test_a_temp_key_is_never_stored(stub: Stub) -> None:
    session = await external(stub)

    written = await append_state(stub, session, {"temp:scratch": 1, "kept": 2})

    assert state_of(written.session) == {"kept": 2}
    assert await state_now(stub, session) == {"kept": 2}


async def test_removals_reach_each_scope(stub: Stub) -> None:
    session = await external(stub)
    await append_state(stub, session, {"user:a": 1, "app:b": 2, "c": 3})

    await append_state(stub, session, {}, removals=("user:a", "app:b", "c"))

    assert await state_now(stub, session) == {}


async def test_a_create_puts_each_initial_key_in_its_scope(stub: Stub) -> None:
    first = await create(
        stub, state_json=json.dumps({"user:lang": "fr", "app:tier": "gold", "own": 1})
    )

    second = await create(stub)

    assert state_of(first) == {"own": 1, "user:lang": "fr", "app:tier": "gold"}
    assert state_of(second) == {"user:lang": "fr", "app:tier": "gold"}


async def test_an_update_replaces_the_session_keys_and_sets_the_shared_ones(
    stub: Stub,
) -> None:
    session = await external(stub, state_json=json.dumps({"old": 1, "user:keep": True}))

    updated = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session=pb.Session(
                session_id=session.session_id,
                user_id=USER,
                state_json=json.dumps({"new": 2, "app:mode": "fast"}),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["state_json"]),
        )
    )

    assert state_of(updated) == {"new": 2, "user:keep": True, "app:mode": "fast"}


async def test_an_agent_reads_and_writes_every_scope(stub: Stub) -> None:
    first = await create(stub, agent_id="scripted")
    second = await create(stub, agent_id="scripted")
    await run(stub, first, 'state {"user:name": "Ada", "app:motd": "hi", "temp:x": 1}')

    seen = json.loads(reply_of(await run(stub, second, "state {}")))

    assert seen == {"app:motd": "hi", "user:name": "Ada"}


async def test_an_agents_turn_commits_its_shared_keys_with_the_turn(stub: Stub) -> None:
    session = await create(stub, agent_id="scripted")

    events = await run(stub, session, 'state {"user:visits": 1}')

    completed = events[-1].completed
    assert state_of(completed.session) == {"user:visits": 1}


async def test_the_same_session_id_in_two_apps_is_two_sessions(stub: Stub) -> None:
    await external(stub, app="shop", session_id="conversation-1")

    other = await external(stub, app="support", session_id="conversation-1")
    await append_state(stub, other, {"own": "support"})

    shop = await stub.GetSession(
        pb.GetSessionRequest(app="shop", session_id="conversation-1", user_id=USER)
    )
    assert (shop.app, state_of(shop)) == ("shop", {})


async def test_a_session_is_not_found_under_another_app(stub: Stub) -> None:
    session = await external(stub, app="shop")

    error = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(session_id=session.session_id, user_id=USER))
    )

    assert error.code() is StatusCode.NOT_FOUND


async def test_a_listing_shows_only_the_apps_sessions(stub: Stub) -> None:
    shop = await external(stub, app="shop")
    await external(stub)

    listed = await stub.ListSessions(pb.ListSessionsRequest(user_id=USER, app="shop"))

    assert [(s.app, s.session_id) for s in listed.sessions] == [("shop", shop.session_id)]


async def test_user_and_app_state_stay_within_their_app(stub: Stub) -> None:
    shop = await external(stub, app="shop")
    support = await external(stub, app="support")

    await append_state(stub, shop, {"user:cart": 3, "app:sale": True})

    assert await state_now(stub, support) == {}
    assert await state_now(stub, await external(stub, app="shop")) == {
        "user:cart": 3,
        "app:sale": True,
    }


async def test_every_call_on_a_session_goes_to_its_app(stub: Stub) -> None:
    session = await create(stub, app="shop", agent_id="scripted")

    await run(stub, session, "hello")
    items = await stub.ListItems(
        pb.ListItemsRequest(app="shop", session_id=session.session_id, user_id=USER)
    )
    ended = await stub.EndSession(
        pb.EndSessionRequest(app="shop", session_id=session.session_id, user_id=USER)
    )

    assert len(items.items) == 2
    assert (ended.app, ended.status) == ("shop", pb.SESSION_STATUS_ENDED)


async def test_an_invalid_app_name_is_refused_naming_the_field(stub: Stub) -> None:
    error = await rpc_error(
        stub.CreateSession(pb.CreateSessionRequest(user_id=USER, agent_id="echo", app="a:b"))
    )

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "app")


async def test_a_refused_append_writes_no_scope(stub: Stub) -> None:
    session = await external(stub)
    await append_state(stub, session, {"user:n": 1, "app:n": 1, "n": 1})

    error = await rpc_error(
        stub.AppendItems(
            pb.AppendItemsRequest(
                session_id=session.session_id,
                user_id=USER,
                items=[message("user", "late")],
                state_delta_json=json.dumps({"user:n": 2, "app:n": 2, "n": 2}),
                expected_last_sequence=0,  # stale: the history holds an item
            )
        )
    )

    assert error.code() is StatusCode.ABORTED
    assert await state_now(stub, session) == {"n": 1, "user:n": 1, "app:n": 1}


async def test_a_retried_append_returns_the_shared_state_it_wrote(stub: Stub) -> None:
    session = await external(stub)
    request = pb.AppendItemsRequest(
        session_id=session.session_id,
        user_id=USER,
        items=[message("user", "hi")],
        state_delta_json=json.dumps({"app:visits": 1}),
        request_id="append-1",
    )
    await stub.AppendItems(request)

    retried = await stub.AppendItems(request)

    assert state_of(retried.session) == {"app:visits": 1}
    assert len(retried.items) == 1


async def test_a_listings_page_token_is_refused_under_another_app(stub: Stub) -> None:
    await external(stub, app="shop")
    await external(stub, app="shop")
    first = await stub.ListSessions(pb.ListSessionsRequest(user_id=USER, app="shop", page_size=1))

    error = await rpc_error(
        stub.ListSessions(
            pb.ListSessionsRequest(user_id=USER, page_size=1, page_token=first.next_page_token)
        )
    )

    assert refusal(error) == (StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "page_token")


async def test_an_update_removes_the_shared_keys_it_names_in_state_removals(
    stub: Stub,
) -> None:
    session = await external(stub, state_json=json.dumps({"user:a": 1, "app:b": 2, "c": 3}))

    updated = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session=pb.Session(session_id=session.session_id, user_id=USER),
            state_removals=["user:a", "app:b"],
        )
    )

    assert state_of(updated) == {"c": 3}
    assert await state_now(stub, await external(stub)) == {}


async def test_an_update_removes_before_it_writes_the_new_state(stub: Stub) -> None:
    session = await external(stub, state_json=json.dumps({"user:a": 1, "app:b": 2}))

    updated = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session=pb.Session(
                session_id=session.session_id,
                user_id=USER,
                state_json=json.dumps({"user:a": 5, "own": True}),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["state_json"]),
            state_removals=["user:a", "app:b"],
        )
    )

    assert state_of(updated) == {"own": True, "user:a": 5}
