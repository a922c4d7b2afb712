"""--log-calls: one structured record per call, with ids and status, and no conversation text."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb

from agent_sessions.logs import JsonFormatter
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, rpc_error, run, serving

SECRET_WORDS = "my card number is 4111 1111 1111 1111"


@asynccontextmanager
async def logging_server(**settings: object) -> AsyncIterator[Stub]:
    async with serving(server_settings("memory://", "logs:", log_calls=True, **settings)) as (
        _,
        stub,
    ):
        yield stub


def call_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "agent_sessions.api.calllog"]


async def test_each_call_is_logged_with_its_ids_status_and_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agent_sessions.api.calllog")
    async with logging_server() as stub:
        session = await create(stub, user_id="alice")
        await run(stub, session, SECRET_WORDS, request_id="req-7")

    [created, ran] = call_records(caplog)
    assert (created.method, created.code, created.user_id) == ("CreateSession", "OK", "alice")  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(ran))
    assert {k: line[k] for k in ("method", "code", "user_id", "session_id", "request_id")} == {
        "method": "Run",
        "code": "OK",
        "user_id": "alice",
        "session_id": session.session_id,
        "request_id": "req-7",
    }
    assert line["duration_ms"] > 0


async def test_a_failed_call_is_logged_with_its_status(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent_sessions.api.calllog")
    async with logging_server() as stub:
        await rpc_error(stub.GetSession(pb.GetSessionRequest(user_id="bob", session_id="nope")))

    [record] = call_records(caplog)
    assert (record.method, record.code, record.session_id) == ("GetSession", "NOT_FOUND", "nope")  # type: ignore[attr-defined]


async def test_what_users_say_stays_out_of_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with logging_server() as stub:
        session = await create(stub)
        await run(stub, session, SECRET_WORDS)

    assert SECRET_WORDS not in caplog.text
    assert all(SECRET_WORDS not in JsonFormatter().format(r) for r in caplog.records)


async def test_the_debug_setting_adds_a_runs_input(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent_sessions.api.calllog")
    async with logging_server(log_conversation_text=True) as stub:
        session = await create(stub)
        await run(stub, session, SECRET_WORDS)

    ran = call_records(caplog)[-1]
    assert ran.input == SECRET_WORDS  # type: ignore[attr-defined]


async def test_calls_are_not_logged_unless_asked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent_sessions.api.calllog")
    async with serving(server_settings("memory://", "logs:")) as (_, stub):
        await create(stub)

    assert call_records(caplog) == []
