"""The openai agent over real gRPC, against a stand-in OpenAI-compatible HTTP server.

Each test runs on the memory and the Redis store. The stand-in (tests/openai_stub.py)
answers as the request's model says, or as the test switches it at runtime, so one
session can fail and then run again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from agent_sessions.agents.openai_chat import OpenAIChatAgent
from agent_sessions.server import SessionServer
from tests.conftest import server_settings
from tests.grpc_helpers import (
    Stub,
    create,
    error_info,
    reply_of,
    rpc_error,
    run,
    state_of,
    turns,
)
from tests.openai_stub import LONG_CHUNK, USAGE, OpenAIStub

API_KEY = "sk-test-4a1f9c"
KEY_ENV = "AGENT_SESSIONS_TEST_OPENAI_KEY"
UNSET_KEY_ENV = "AGENT_SESSIONS_TEST_UNSET_KEY"
SYSTEM_PROMPT = "You are terse."
# The agents are under test here, not the stores: memory and Redis suffice.
SKIP_CLUSTER = True


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    started = OpenAIStub()
    started.start()
    yield started
    started.stop()


@pytest.fixture
async def grpc_stub(
    store_url: str, key_prefix: str, openai_stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stub]:
    """A session server whose agents are models of the stand-in server."""
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.delenv(UNSET_KEY_ENV, raising=False)

    def model(name: str, **options: Any) -> dict[str, Any]:
        spec = {"kind": "openai", "base_url": openai_stub.base_url, "model": name}
        return {**spec, "api_key_env": KEY_ENV, **options}

    agents = {
        "gpt": model("echo-context", system_prompt=SYSTEM_PROMPT),
        "tuned": model("echo-context", temperature=0.2, max_tokens=64),
        "keyless": model("echo-context", api_key_env=UNSET_KEY_ENV),
        "counted": model("usage"),
        "slow": model("slow"),
        "slow-limited": model("slow", timeout=0.5),
        "long-limited": model("long", max_reply_bytes=4096),
    }
    server = SessionServer(server_settings(store_url, key_prefix, agents=agents))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield Stub(channel)
    finally:
        await server.stop(0)


async def create_with_state(stub: Stub, agent_id: str) -> pb.Session:
    return await create(stub, agent_id=agent_id, state_json='{"city":"Paris"}')


async def settled_turns(stub: Stub, session: pb.Session) -> list[pb.Turn]:
    """The turns once none is in progress: a cancelled run records its end just after."""
    for _ in range(100):
        listed = await turns(stub, session)
        if all(t.status != pb.TURN_STATUS_IN_PROGRESS for t in listed):
            return listed
        await asyncio.sleep(0.02)
    raise AssertionError(f"a turn stayed in progress: {listed}")


async def disconnects_within(openai_stub: OpenAIStub, seconds: float) -> bool:
    return await asyncio.to_thread(openai_stub.disconnected.wait, seconds)


UNAVAILABLE = (StatusCode.UNAVAILABLE, "AGENT_UNAVAILABLE")
FAILED = (StatusCode.INTERNAL, "AGENT_FAILED")


async def assert_fails_then_runs_again(
    stub: Stub,
    openai_stub: OpenAIStub,
    mode: str,
    refusal: tuple[StatusCode, str],
    *upstream: str,
) -> None:
    """Runs a turn while the stand-in answers in ``mode``, which fails with ``refusal``
    (code, reason); then, with the stand-in answering again, one that works.

    The caller's error and the failed turn both carry ``upstream``: what the model server
    said, which no ErrorInfo field holds.
    """
    session = await create_with_state(stub, "gpt")
    openai_stub.mode = mode

    error = await rpc_error(run(stub, session, "Hello"))

    assert (error.code(), error_info(error).reason) == refusal
    assert error_info(error).metadata["turn_index"] == "1"
    details = error.details() or ""
    assert all(part in details for part in upstream), details
    assert API_KEY not in details
    [turn] = await turns(stub, session)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_FAILED, "Hello", "")
    assert all(part in turn.error for part in upstream), turn.error
    assert API_KEY not in turn.error
    got = await stub.GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id=session.user_id)
    )
    assert (got.turn_count, state_of(got)) == (0, {"city": "Paris"})

    openai_stub.mode = None
    events = await run(stub, session, "Hello again")

    assert events[-1].completed.turn.index == 2
    assert reply_of(events).startswith("messages=2 ")  # the failed turn is not history


async def test_a_turn_streams_the_model_reply_and_stores_it_as_the_output(
    grpc_stub: Stub,
) -> None:
    session = await create(grpc_stub, agent_id="gpt")

    events = await run(grpc_stub, session, "How's the weather in Shanghai?")

    expected = f"messages=2 system={SYSTEM_PROMPT} last=How's the weather in Shanghai? history="
    assert reply_of(events) == expected
    assert events[-1].completed.turn.output == expected
    [turn] = await turns(grpc_stub, session)
    assert (turn.status, turn.output) == (pb.TURN_STATUS_COMPLETED, expected)


async def test_reply_text_reaches_the_caller_while_the_model_is_still_streaming(
    grpc_stub: Stub,
) -> None:
    session = await create(grpc_stub, agent_id="slow")  # 50 chunks, 0.2 s apart
    call = grpc_stub.Run(
        pb.RunRequest(session_id=session.session_id, user_id=session.user_id, input="Go slowly")
    )
    events = aiter(call)

    started = time.monotonic()
    await anext(events)
    first = await anext(events)

    assert time.monotonic() - started < 2
    assert first.delta.text.startswith("tick0")
    call.cancel()


async def test_the_second_turn_sends_the_system_prompt_and_the_first_turn_as_history(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    session = await create(grpc_stub, agent_id="gpt")
    first = reply_of(await run(grpc_stub, session, "How's the weather in Shanghai?"))

    events = await run(grpc_stub, session, "What about Beijing?")

    assert openai_stub.requests[-1].messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "How's the weather in Shanghai?"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": "What about Beijing?"},
    ]
    assert reply_of(events).endswith(
        "last=What about Beijing? history=How's the weather in Shanghai?"
    )


async def test_the_session_summary_reaches_the_model_as_a_system_message(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    earlier = pb.Turn(index=1, status=pb.TURN_STATUS_COMPLETED, input="Hi", output="Hello!")
    restored = pb.SessionSnapshot(
        session_id="restored",
        user_id="user-1",
        agent_id="gpt",
        summary="The user lives in Oslo.",
        turns=[earlier],
    )
    session = await grpc_stub.ImportSession(pb.ImportSessionRequest(snapshot=restored))

    await run(grpc_stub, session, "Any plans?")

    assert openai_stub.requests[-1].messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "system",
            "content": "Summary of the conversation so far: The user lives in Oslo.",
        },
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Any plans?"},
    ]


async def test_the_api_key_from_api_key_env_reaches_the_server_as_a_bearer_token(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    session = await create(grpc_stub, agent_id="gpt")

    await run(grpc_stub, session, "Hello")

    [request] = openai_stub.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}


async def test_an_unset_api_key_env_sends_a_placeholder_key_as_local_servers_take_any(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    session = await create(grpc_stub, agent_id="keyless")

    events = await run(grpc_stub, session, "Hello")

    assert events[-1].completed.turn.status == pb.TURN_STATUS_COMPLETED
    assert openai_stub.requests[-1].headers["authorization"] == "Bearer unused"


async def test_temperature_and_max_tokens_are_sent_only_when_configured(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    await run(grpc_stub, await create(grpc_stub, agent_id="tuned"), "Hello")
    await run(grpc_stub, await create(grpc_stub, agent_id="gpt"), "Hello")

    tuned, plain = openai_stub.requests
    assert (tuned.body["temperature"], tuned.body["max_tokens"]) == (0.2, 64)
    assert "temperature" not in plain.body and "max_tokens" not in plain.body


async def test_reported_token_usage_is_stored_with_the_turn(grpc_stub: Stub) -> None:
    session = await create(grpc_stub, agent_id="counted")

    events = await run(grpc_stub, session, "Hello")

    assert reply_of(events) == "counted"
    [turn] = await turns(grpc_stub, session)
    assert (turn.usage.input_tokens, turn.usage.output_tokens) == (
        USAGE["prompt_tokens"],
        USAGE["completion_tokens"],
    )


async def test_cancelling_a_run_closes_the_upstream_request_and_records_the_turn_cancelled(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    session = await create(grpc_stub, agent_id="slow")
    call = grpc_stub.Run(
        pb.RunRequest(session_id=session.session_id, user_id=session.user_id, input="Go slowly")
    )
    events = aiter(call)
    assert (await anext(events)).WhichOneof("event") == "started"
    assert (await anext(events)).delta.text.startswith("tick0")

    cancelled_at = time.monotonic()
    call.cancel()

    assert await disconnects_within(openai_stub, 1.0)
    assert openai_stub.disconnect_time is not None
    assert openai_stub.disconnect_time - cancelled_at < 1.0
    [turn] = await settled_turns(grpc_stub, session)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_CANCELLED, "Go slowly", "")


async def test_the_agent_timeout_is_deadline_exceeded_and_fails_the_turn(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    session = await create(grpc_stub, agent_id="slow-limited")

    started = time.monotonic()
    error = await rpc_error(run(grpc_stub, session, "Go slowly"))

    assert time.monotonic() - started < 3
    assert error.code() == StatusCode.DEADLINE_EXCEEDED
    assert error_info(error).reason == "RUN_TIMED_OUT"
    assert "500 ms" in (error.details() or "")  # its own timeout, not the server's
    assert await disconnects_within(openai_stub, 1.0)
    [turn] = await turns(grpc_stub, session)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_FAILED, "Go slowly", "")


async def test_a_reply_past_max_reply_bytes_is_internal_and_stores_no_output(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    session = await create(grpc_stub, agent_id="long-limited")

    error = await rpc_error(run(grpc_stub, session, "Tell me everything"))

    assert error.code() == StatusCode.INTERNAL
    assert error_info(error).reason == "AGENT_FAILED"
    # The stand-in had 1 MiB to send; it was cut off, not read to the end.
    assert await disconnects_within(openai_stub, 1.0)
    [turn] = await turns(grpc_stub, session)
    assert (turn.status, turn.output) == (pb.TURN_STATUS_FAILED, "")
    assert LONG_CHUNK not in turn.error


async def test_http_500_is_unavailable_and_the_session_runs_again(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    await assert_fails_then_runs_again(grpc_stub, openai_stub, "error-500", UNAVAILABLE, "HTTP 500")


async def test_http_429_is_unavailable_and_the_session_runs_again(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    await assert_fails_then_runs_again(grpc_stub, openai_stub, "error-429", UNAVAILABLE, "HTTP 429")


async def test_http_401_is_internal_carrying_the_status_and_the_upstream_message(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    await assert_fails_then_runs_again(
        grpc_stub,
        openai_stub,
        "error-401",
        FAILED,
        f"HTTP 401 from {openai_stub.base_url}: Incorrect API key provided: [api key].",
    )


async def test_an_event_that_is_not_json_is_internal_malformed_stream(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    await assert_fails_then_runs_again(
        grpc_stub, openai_stub, "malformed", FAILED, "malformed stream", openai_stub.base_url
    )


async def test_a_response_that_is_not_a_chat_completion_stream_is_internal(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    await assert_fails_then_runs_again(
        grpc_stub, openai_stub, "not-a-stream", FAILED, "malformed stream", "application/json"
    )


async def test_a_refused_connection_is_unavailable_and_the_session_runs_again(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    session = await create_with_state(grpc_stub, "gpt")
    openai_stub.stop()

    error = await rpc_error(run(grpc_stub, session, "Hello"))

    assert error.code() == StatusCode.UNAVAILABLE
    assert error_info(error).reason == "AGENT_UNAVAILABLE"
    assert openai_stub.base_url in (error.details() or "")  # which server could not be reached
    [turn] = await turns(grpc_stub, session)
    assert (turn.status, turn.input, turn.output) == (pb.TURN_STATUS_FAILED, "Hello", "")
    assert "ConnectionRefused" in turn.error

    openai_stub.start()  # on the same port
    events = await run(grpc_stub, session, "Hello again")

    assert events[-1].completed.turn.index == 2
    assert events[-1].completed.session.turn_count == 1
    assert state_of(events[-1].completed.session) == {"city": "Paris"}


async def test_stopping_the_server_closes_the_agents_http_client(
    store_url: str, key_prefix: str, openai_stub: OpenAIStub
) -> None:
    spec = {"kind": "openai", "base_url": openai_stub.base_url, "model": "echo-context"}
    server = SessionServer(server_settings(store_url, key_prefix, agents={"gpt": spec}))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            await run(Stub(channel), await create(Stub(channel), agent_id="gpt"), "Hello")
        configured = server.agents.resolve("gpt")
        assert configured is not None and isinstance(configured.agent, OpenAIChatAgent)
        assert not configured.agent.closed
    finally:
        await server.stop(0)

    assert configured.agent.closed


async def test_the_model_writes_the_summary_when_a_session_is_compressed(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    earlier = [
        pb.Turn(index=1, status=pb.TURN_STATUS_COMPLETED, input="Rain tomorrow?", output="Yes."),
        pb.Turn(index=2, status=pb.TURN_STATUS_FAILED, input="And Sunday?"),
        pb.Turn(index=3, status=pb.TURN_STATUS_COMPLETED, input="Thanks", output="Welcome."),
    ]
    restored = pb.SessionSnapshot(
        session_id="long-chat",
        user_id="user-1",
        agent_id="gpt",
        summary="The user lives in Oslo.",
        turns=earlier,
    )
    session = await grpc_stub.ImportSession(pb.ImportSessionRequest(snapshot=restored))

    response = await grpc_stub.CompressSession(
        pb.CompressSessionRequest(session_id="long-chat", user_id="user-1", keep_last=1)
    )

    assert response.summarizer == "agent"
    [system, folded] = openai_stub.requests[-1].messages
    assert system["role"] == "system"
    assert system["content"].startswith("You maintain the running summary of a conversation")
    assert folded == {
        "role": "user",
        "content": "Earlier summary:\nThe user lives in Oslo.\n\nTurns to fold:\n"
        "[1] user: Rain tomorrow?\n[1] assistant: Yes.\n[2] user: And Sunday?",
    }
    # The stand-in answers with what it received, so its answer is the new summary.
    assert response.session.summary.startswith("messages=2 ")
    assert (response.session.folded_turns, session.total_turns) == (2, 3)


async def test_stored_tool_calls_and_results_go_back_to_the_model_paired(
    grpc_stub: Stub, openai_stub: OpenAIStub
) -> None:
    session = await create(grpc_stub, agent_id="gpt")
    arguments = '{"city": "Shanghai"}'
    await grpc_stub.AppendItems(
        pb.AppendItemsRequest(
            session_id=session.session_id,
            user_id=session.user_id,
            items=[
                pb.Item(
                    type=pb.ITEM_TYPE_MESSAGE,
                    role="user",
                    payload_json='{"role": "user", "content": "Weather in Shanghai?"}',
                ),
                pb.Item(
                    type=pb.ITEM_TYPE_TOOL_CALL,
                    name="get_weather",
                    call_id="call-1",
                    payload_json=json.dumps({"name": "get_weather", "arguments": arguments}),
                ),
                pb.Item(
                    type=pb.ITEM_TYPE_TOOL_CALL,
                    name="get_time",
                    call_id="call-orphan",  # no result: the API refuses a call alone
                    payload_json='{"arguments": {}}',
                ),
                pb.Item(
                    type=pb.ITEM_TYPE_TOOL_RESULT,
                    call_id="call-1",
                    payload_json='{"call_id": "call-1", "output": {"sky": "sunny"}}',
                ),
                pb.Item(
                    type=pb.ITEM_TYPE_MESSAGE,
                    role="assistant",
                    payload_json='{"role": "assistant", "content": "Sunny."}',
                ),
            ],
        )
    )

    await run(grpc_stub, session, "And tomorrow?")

    assert openai_stub.requests[-1].messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Weather in Shanghai?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": '{"sky": "sunny"}'},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "And tomorrow?"},
    ]
