"""Google ADK's own runner with the service as its session service (GrpcSessionService)."""

from __future__ import annotations

import asyncio
import copy
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from google.adk.agents import LlmAgent
from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError as AdkAlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.tools.function_tool import FunctionTool
from google.genai import types
from pydantic import Field

from agent_sessions_client import AsyncSessionClient, FailedPreconditionError, ItemType
from agent_sessions_client.adk import LIST_ALL_USERS_MESSAGE, GrpcSessionService

T = TypeVar("T")

# --- an offline model, a tool, and helpers --------------------------------------------

_CITY = re.compile(r"weather in (\w+)", re.IGNORECASE)


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "sky": "晴", "celsius": 22.5}


class ScriptedModel(BaseLlm):
    """Answers from a script, offline. Asked about the weather in a city, it calls
    ``get_weather``; given the tool's result, it answers with it; anything else, it
    answers with how many contents it was sent, so a test sees what the session gave
    back. It records every request."""

    model: str = "scripted"
    requests: list[LlmRequest] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request)
        parts = (llm_request.contents[-1].parts or []) if llm_request.contents else []
        for part in parts:
            if part.function_response is not None:
                result = part.function_response.response or {}
                yield reply(f"{result['city']}: {result['sky']}, {result['celsius']}°C")
                return
        match = _CITY.search("".join(part.text or "" for part in parts))
        if match:
            call = types.FunctionCall(name="get_weather", args={"city": match[1]})
            yield LlmResponse(
                content=types.Content(role="model", parts=[types.Part(function_call=call)])
            )
            return
        yield reply(f"I was sent {len(llm_request.contents)} contents; 你好")


def reply(text: str) -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))


def an_agent(model: ScriptedModel) -> LlmAgent:
    return LlmAgent(
        name="weather",
        model=model,
        instruction="Answer briefly.",
        tools=[FunctionTool(get_weather)],
    )


def said(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def an_event(text: str, **fields: Any) -> Event:
    """The user's event saying ``text``, as the runner appends it."""
    return Event(
        invocation_id=f"e-{uuid.uuid4().hex[:8]}",
        author="user",
        content=said(text),
        **fields,
    )


def texts(session: Session | None) -> list[str]:
    assert session is not None
    return [
        "".join(p.text or "" for p in (e.content.parts or [])) for e in session.events if e.content
    ]


def in_a_thread(work: Callable[[], T]) -> T:
    """``work``'s result, run on a thread of its own: its event loops never touch the
    test runner's."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(work).result(timeout=120)


@pytest.fixture
def app() -> str:
    """An app of its own per test: app state is shared by every user of an app."""
    return f"adk-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def service(live_server: str) -> AsyncIterator[GrpcSessionService]:
    made = GrpcSessionService(live_server)
    yield made
    await made.close()


@pytest.fixture
async def client(live_server: str) -> AsyncIterator[AsyncSessionClient]:
    async with AsyncSessionClient(live_server) as made:
        yield made


async def run_turn(runner: Runner, user_id: str, session_id: str, text: str) -> list[Event]:
    """One turn through the runner: every event it yields, the user's message first."""
    return [
        event
        async for event in runner.run_async(
            user_id=user_id, session_id=session_id, new_message=said(text), yield_user_message=True
        )
    ]


# --- the contract -----------------------------------------------------------------------


def test_it_is_a_session_service_of_adk() -> None:
    assert isinstance(GrpcSessionService("127.0.0.1:1"), BaseSessionService)


def test_importing_the_client_never_imports_adk() -> None:
    probe = (
        "import sys, agent_sessions_client;"
        "print(sorted(m for m in sys.modules if m.startswith('google.adk')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


async def test_a_given_client_is_used_and_left_open(
    client: AsyncSessionClient, app: str, user_id: str
) -> None:
    service = GrpcSessionService(client=client)
    session = await service.create_session(app_name=app, user_id=user_id)
    await service.close()

    assert (
        await client.load_session(session.id, user_id=user_id, app=app)
    ).session_id == session.id
    with pytest.raises(ValueError, match="not both"):
        GrpcSessionService("127.0.0.1:1", client=client)


async def test_a_tool_using_conversation_resumes_in_a_new_runner_with_a_new_service(
    live_server: str, service: GrpcSessionService, app: str, user_id: str
) -> None:
    first_model = ScriptedModel()
    runner = Runner(app_name=app, agent=an_agent(first_model), session_service=service)
    session = await service.create_session(app_name=app, user_id=user_id)
    yielded = await run_turn(runner, user_id, session.id, "How's the weather in Shanghai?")
    yielded += await run_turn(runner, user_id, session.id, "Thanks!")

    # Another process: a service and a runner of its own, on the same server.
    async with GrpcSessionService(live_server) as other:
        second_model = ScriptedModel()
        resumed = Runner(app_name=app, agent=an_agent(second_model), session_service=other)
        yielded += await run_turn(resumed, user_id, session.id, "And tomorrow? 明天呢")
        stored = await other.get_session(app_name=app, user_id=user_id, session_id=session.id)

    assert stored is not None
    assert stored.events == [event for event in yielded if not event.partial]
    sent = second_model.requests[-1].contents
    responses = [p.function_response for c in sent for p in c.parts or [] if p.function_response]
    assert [r.response for r in responses] == [{"city": "Shanghai", "sky": "晴", "celsius": 22.5}]
    assert texts(stored)[-1] == "I was sent 7 contents; 你好"


async def test_each_event_is_an_item_typed_by_its_function_calls(
    service: GrpcSessionService, client: AsyncSessionClient, app: str, user_id: str
) -> None:
    runner = Runner(app_name=app, agent=an_agent(ScriptedModel()), session_service=service)
    session = await service.create_session(app_name=app, user_id=user_id)
    await run_turn(runner, user_id, session.id, "How's the weather in Paris?")

    handle = await client.load_session(session.id, user_id=user_id, app=app)
    items = [item async for item in handle.items()]

    assert handle.info.external_agent and handle.agent_id == "adk"
    assert [(i.type, i.role, i.name) for i in items] == [
        (ItemType.MESSAGE, "user", ""),
        (ItemType.TOOL_CALL, "weather", "get_weather"),
        (ItemType.TOOL_RESULT, "weather", "get_weather"),
        (ItemType.MESSAGE, "weather", ""),
    ]
    assert items[1].call_id == items[2].call_id != ""
    assert [Event.model_validate_json(i.payload_json).id for i in items] == [
        i.item_id for i in items
    ]


def test_runner_run_keeps_the_conversation_across_turns_on_threads_of_its_own(
    live_server: str, app: str, user_id: str
) -> None:
    model = ScriptedModel()
    service = GrpcSessionService(live_server)
    runner = Runner(
        app_name=app, agent=an_agent(model), session_service=service, auto_create_session=True
    )

    def two_turns() -> list[Event]:
        # Runner.run: each call runs the agent on a thread and event loop of its own.
        first = list(
            runner.run(
                user_id=user_id, session_id="sync-1", new_message=said("How's the weather in Rome?")
            )
        )
        return first + list(
            runner.run(user_id=user_id, session_id="sync-1", new_message=said("Thanks"))
        )

    yielded = two_turns()

    async def read() -> Session | None:
        try:
            return await service.get_session(app_name=app, user_id=user_id, session_id="sync-1")
        finally:
            await service.close()

    stored = in_a_thread(lambda: asyncio.run(read()))
    assert texts(stored) == [
        "How's the weather in Rome?",
        "",
        "",
        "Rome: 晴, 22.5°C",
        "Thanks",
        "I was sent 5 contents; 你好",
    ]
    assert stored is not None and stored.events[1:4] == yielded[:3]


async def test_events_read_back_equal_field_for_field(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    blob = bytes(range(256)) * 3
    event = Event(
        invocation_id="e-1",
        author="weather",
        timestamp=1714000000.1234567,
        content=types.Content(
            role="model",
            parts=[
                types.Part(text='Ünïcödé, 你好, 🌍, \u2028 and "quotes" \\'),
                types.Part(inline_data=types.Blob(mime_type="image/png", data=blob)),
                types.Part(
                    function_call=types.FunctionCall(
                        id="c-1", name="f", args={"x": None, "y": 2**70}
                    )
                ),
            ],
        ),
        custom_metadata={"score": 0.1, "nested": {"list": [1.5, None, "ß"]}},
        long_running_tool_ids={"c-1", "c-0"},
        actions=EventActions(state_delta={"ratio": 1 / 3, "big": 2**60}),
    )
    session = await service.create_session(app_name=app, user_id=user_id)
    appended = await service.append_event(session, copy.deepcopy(event))

    stored = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)

    assert stored is not None
    assert stored.events == [appended] == [event]
    parts = stored.events[0].content.parts if stored.events[0].content else None
    assert parts is not None and parts[1].inline_data is not None
    assert parts[1].inline_data.data == blob
    assert stored.events[0].timestamp == 1714000000.1234567
    assert stored.state["ratio"] == 1 / 3 and stored.state["big"] == 2**60


async def test_last_update_time_is_the_last_events_timestamp(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    for stamp in (1714000000.25, 1714000001.125):
        await service.append_event(session, an_event("hi", timestamp=stamp))

    stored = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    newest_only = await service.get_session(
        app_name=app,
        user_id=user_id,
        session_id=session.id,
        config=GetSessionConfig(num_recent_events=0),
    )

    assert session.last_update_time == 1714000001.125
    assert stored is not None and stored.last_update_time == 1714000001.125
    assert newest_only is not None and newest_only.last_update_time == 1714000001.125


async def test_num_recent_events_gives_the_newest_events(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    for n in range(5):
        await service.append_event(session, an_event(f"m{n}"))

    def read(count: int) -> Any:
        config = GetSessionConfig(num_recent_events=count)
        return service.get_session(
            app_name=app, user_id=user_id, session_id=session.id, config=config
        )

    assert texts(await read(2)) == ["m3", "m4"]
    assert texts(await read(9)) == ["m0", "m1", "m2", "m3", "m4"]
    assert texts(await read(0)) == []


async def test_after_timestamp_gives_the_events_from_then_on(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    for n in range(4):
        await service.append_event(session, an_event(f"m{n}", timestamp=1714000000.0 + n))

    def read(**config: Any) -> Any:
        return service.get_session(
            app_name=app, user_id=user_id, session_id=session.id, config=GetSessionConfig(**config)
        )

    assert texts(await read(after_timestamp=1714000002.0)) == ["m2", "m3"]
    assert texts(await read(after_timestamp=1714000001.5, num_recent_events=1)) == ["m3"]
    assert texts(await read(after_timestamp=1714000009.0)) == []


async def test_a_session_read_with_some_of_its_events_takes_the_next_event(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    for n in range(3):
        await service.append_event(session, an_event(f"m{n}"))

    for config in (GetSessionConfig(num_recent_events=0), GetSessionConfig(num_recent_events=1)):
        partial = await service.get_session(
            app_name=app, user_id=user_id, session_id=session.id, config=config
        )
        assert partial is not None
        await service.append_event(partial, an_event("next"))

    stored = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    assert texts(stored) == ["m0", "m1", "m2", "next", "next"]


async def test_state_deltas_land_in_their_scopes(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(
        app_name=app, user_id=user_id, state={"user:name": "Ada"}
    )
    delta = {"topic": 1, "user:visits": 2, "app:motd": "hi", "temp:draft": "x"}
    await service.append_event(session, an_event("hello", actions=EventActions(state_delta=delta)))

    same = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    second = await service.create_session(app_name=app, user_id=user_id)
    other_user = await service.create_session(app_name=app, user_id=f"{user_id}-other")
    other_app = await service.create_session(app_name=f"{app}-other", user_id=user_id)

    # The temp: key is the invocation's only: in the object, never stored.
    assert session.state == {**delta, "user:name": "Ada"}
    assert same is not None and same.state == {
        "topic": 1,
        "user:visits": 2,
        "user:name": "Ada",
        "app:motd": "hi",
    }
    assert same.events[0].actions.state_delta == {"topic": 1, "user:visits": 2, "app:motd": "hi"}
    assert second.state == {"user:name": "Ada", "user:visits": 2, "app:motd": "hi"}
    assert other_user.state == {"app:motd": "hi"}
    assert other_app.state == {}


async def test_the_same_session_id_under_two_users_is_two_sessions(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    for user, text in ((user_id, "mine"), (f"{user_id}-2", "theirs")):
        session = await service.create_session(app_name=app, user_id=user, session_id="shared-id")
        await service.append_event(session, an_event(text))

    assert texts(
        await service.get_session(app_name=app, user_id=user_id, session_id="shared-id")
    ) == ["mine"]
    assert texts(
        await service.get_session(app_name=app, user_id=f"{user_id}-2", session_id="shared-id")
    ) == ["theirs"]


async def test_the_same_session_id_under_two_apps_is_two_sessions(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    for name, text in ((app, "here"), (f"{app}-2", "there")):
        session = await service.create_session(
            app_name=name, user_id=user_id, session_id="shared-id"
        )
        await service.append_event(session, an_event(text))

    assert texts(
        await service.get_session(app_name=app, user_id=user_id, session_id="shared-id")
    ) == ["here"]
    assert texts(
        await service.get_session(app_name=f"{app}-2", user_id=user_id, session_id="shared-id")
    ) == ["there"]


async def test_a_taken_session_id_raises_adks_already_exists_error(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    await service.create_session(app_name=app, user_id=user_id, session_id="taken")

    with pytest.raises(AdkAlreadyExistsError):
        await service.create_session(app_name=app, user_id=user_id, session_id="taken")


async def test_a_stale_session_object_raises_stale_session_error_and_writes_nothing(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    first = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    stale = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    assert first is not None and stale is not None
    await service.append_event(first, an_event("first", actions=EventActions(state_delta={"k": 1})))

    with pytest.raises(StaleSessionError, match="modified in storage since it was loaded"):
        await service.append_event(
            stale, an_event("late", actions=EventActions(state_delta={"k": 2, "user:u": 2}))
        )

    stored = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    assert texts(stored) == ["first"]
    assert stored is not None and stored.state == {"k": 1}


async def test_a_retried_append_is_stored_once(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    # A retry after an append whose answer was lost: the same event, through a copy of
    # the session object as it was before (so not knowing the first append went through).
    session = await service.create_session(app_name=app, user_id=user_id)
    before = copy.deepcopy(session)
    event = an_event("once", actions=EventActions(state_delta={"count": 1}))
    await service.append_event(session, event)

    await service.append_event(before, copy.deepcopy(event))
    await service.append_event(session, event)  # through the object that appended it

    stored = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    assert stored is not None and stored.events == [event]
    assert before.events == [event] and session.events == [event]
    await service.append_event(before, an_event("next"))  # the retry left it current


async def test_another_event_with_a_stored_events_id_is_refused(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    await service.append_event(session, an_event("first", id="same-id"))

    with pytest.raises(AdkAlreadyExistsError):
        await service.append_event(session, an_event("second", id="same-id"))

    assert texts(
        await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    ) == ["first"]


async def test_partial_events_are_not_stored(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    await service.append_event(session, an_event("partial", partial=True))

    assert (
        texts(await service.get_session(app_name=app, user_id=user_id, session_id=session.id)) == []
    )


async def test_a_session_object_made_by_hand_appends_only_if_it_matches_storage(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    created = await service.create_session(app_name=app, user_id=user_id)
    event = an_event("first")
    await service.append_event(Session(id=created.id, app_name=app, user_id=user_id), event)

    current = Session(id=created.id, app_name=app, user_id=user_id, events=[event])
    await service.append_event(current, an_event("second"))
    with pytest.raises(StaleSessionError):
        await service.append_event(
            Session(id=created.id, app_name=app, user_id=user_id), an_event("x")
        )

    assert texts(
        await service.get_session(app_name=app, user_id=user_id, session_id=created.id)
    ) == [
        "first",
        "second",
    ]


async def test_a_cleared_history_takes_events_again(
    service: GrpcSessionService, client: AsyncSessionClient, app: str, user_id: str
) -> None:
    # The newest item is gone, but sequence numbers go on: the marker is what was read.
    session = await service.create_session(app_name=app, user_id=user_id)
    await service.append_event(session, an_event("old"))
    await (await client.load_session(session.id, user_id=user_id, app=app)).clear_items()

    reread = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    assert reread is not None and reread.events == []
    await service.append_event(reread, an_event("new"))

    assert texts(
        await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    ) == ["new"]


async def test_list_sessions_lists_the_users_sessions_least_recently_updated_first(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    first = await service.create_session(
        app_name=app, user_id=user_id, session_id="a", state={"n": 1}
    )
    await service.create_session(app_name=app, user_id=user_id, session_id="b", state={"user:x": 1})
    await service.append_event(first, an_event("later"))
    await service.create_session(app_name=app, user_id=f"{user_id}-other", session_id="c")

    listed = (await service.list_sessions(app_name=app, user_id=user_id)).sessions

    assert [s.id for s in listed] == ["b", "a"]
    assert [s.events for s in listed] == [[], []]
    assert [s.state for s in listed] == [{"user:x": 1}, {"n": 1, "user:x": 1}]
    assert listed[0].last_update_time <= listed[1].last_update_time
    assert (await service.list_sessions(app_name=f"{app}-none", user_id=user_id)).sessions == []


async def test_listing_every_users_sessions_raises_not_implemented_error_naming_the_fix(
    service: GrpcSessionService, app: str
) -> None:
    with pytest.raises(NotImplementedError) as raised:
        await service.list_sessions(app_name=app)

    assert str(raised.value) == LIST_ALL_USERS_MESSAGE
    assert "user_id" in LIST_ALL_USERS_MESSAGE and "docs/adk.md" in LIST_ALL_USERS_MESSAGE


async def test_delete_session_deletes_it_and_a_missing_one_is_no_error(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    await service.append_event(session, an_event("bye"))

    await service.delete_session(app_name=app, user_id=user_id, session_id=session.id)
    await service.delete_session(app_name=app, user_id=user_id, session_id=session.id)

    assert await service.get_session(app_name=app, user_id=user_id, session_id=session.id) is None
    with pytest.raises(SessionNotFoundError):
        await service.append_event(session, an_event("too late"))


async def test_get_user_state_gives_the_users_keys_without_their_prefix(
    service: GrpcSessionService, app: str, user_id: str
) -> None:
    assert await service.get_user_state(app_name=app, user_id=user_id) == {}
    session = await service.create_session(
        app_name=app, user_id=user_id, state={"user:name": "Ada", "app:motd": "hi", "topic": 1}
    )
    await service.append_event(
        session, an_event("hi", actions=EventActions(state_delta={"user:visits": 3}))
    )

    assert await service.get_user_state(app_name=app, user_id=user_id) == {
        "name": "Ada",
        "visits": 3,
    }
    assert await service.get_user_state(app_name=app, user_id=f"{user_id}-other") == {}


async def test_an_expired_session_is_gone(live_server: str, app: str, user_id: str) -> None:
    async with GrpcSessionService(live_server, ttl=timedelta(seconds=1)) as service:
        session = await service.create_session(app_name=app, user_id=user_id)
        await asyncio.sleep(1.5)

        assert (
            await service.get_session(app_name=app, user_id=user_id, session_id=session.id) is None
        )
        with pytest.raises(SessionNotFoundError):
            await service.append_event(session, an_event("too late"))


async def test_an_ended_session_is_readable_but_takes_no_event(
    service: GrpcSessionService, client: AsyncSessionClient, app: str, user_id: str
) -> None:
    session = await service.create_session(app_name=app, user_id=user_id)
    await service.append_event(session, an_event("before"))
    await (await client.load_session(session.id, user_id=user_id, app=app)).end()

    reread = await service.get_session(app_name=app, user_id=user_id, session_id=session.id)
    assert texts(reread) == ["before"]
    assert reread is not None
    with pytest.raises(FailedPreconditionError, match="ended"):
        await service.append_event(reread, an_event("after"))


# --- two application processes ------------------------------------------------------------


async def race(
    services: tuple[GrpcSessionService, GrpcSessionService], app: str, user_id: str
) -> None:
    """Two writers read the same session, then both append: one wins, the other is stale,
    re-reads and appends again. Then each appends rounds of events, re-reading when stale."""
    created = await services[0].create_session(app_name=app, user_id=user_id, session_id="shared")
    left, right = [
        await s.get_session(app_name=app, user_id=user_id, session_id=created.id) for s in services
    ]
    assert left is not None and right is not None
    results = await asyncio.gather(
        services[0].append_event(left, an_event("left 0")),
        services[1].append_event(right, an_event("right 0")),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Event", "StaleSessionError"]

    async def writer(service: GrpcSessionService, name: str, rounds: range) -> None:
        for n in rounds:
            event = an_event(f"{name} {n}")
            while True:
                current = await service.get_session(
                    app_name=app, user_id=user_id, session_id="shared"
                )
                assert current is not None
                try:
                    await service.append_event(current, event)
                    break
                except StaleSessionError:
                    continue  # another writer won: read again, append again

    loser = 0 if isinstance(results[0], StaleSessionError) else 1
    await writer(services[loser], ("left", "right")[loser], range(1))
    await asyncio.gather(
        writer(services[0], "left", range(1, 6)), writer(services[1], "right", range(1, 6))
    )

    stored = await services[0].get_session(app_name=app, user_id=user_id, session_id="shared")
    written = texts(stored)
    assert sorted(written) == sorted(f"{name} {n}" for name in ("left", "right") for n in range(6))
    for name in ("left", "right"):  # each writer's events in its order
        assert [t for t in written if t.startswith(name)] == [f"{name} {n}" for n in range(6)]


async def test_two_services_appending_to_one_session_lose_and_duplicate_nothing(
    live_server: str, app: str, user_id: str
) -> None:
    async with GrpcSessionService(live_server) as one, GrpcSessionService(live_server) as two:
        await race((one, two), app, user_id)


async def test_two_applications_on_two_server_replicas_lose_and_duplicate_nothing(
    two_replicas: tuple[str, str], app: str, user_id: str
) -> None:
    async with (
        GrpcSessionService(two_replicas[0]) as one,
        GrpcSessionService(two_replicas[1]) as two,
    ):
        await race((one, two), app, user_id)
