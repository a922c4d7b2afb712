"""Prometheus metrics at /metrics over real gRPC, and JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import socket
import urllib.request
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from agent_sessions.config import Settings
from agent_sessions.logs import JsonFormatter
from agent_sessions.server import SessionServer
from agent_sessions.store.metered import MeteredSessionStore
from launchers.redis_server import RedisServer, free_port
from tests.agents import ScriptedAgent
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, error_info, rpc_error, run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(port: int) -> Samples:
    # The server runs on this event loop: the HTTP request must not block it.
    return await asyncio.to_thread(_scrape, port)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def metered(scripted_agent: ScriptedAgent) -> AsyncIterator[SessionServer]:
    running = SessionServer(
        server_settings("memory://", "metrics:", metrics_address="127.0.0.1:0"),
        agents={"scripted": scripted_agent},
    )
    await running.start()
    yield running
    await running.stop(0)


@pytest.fixture
async def metered_stub(metered: SessionServer) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(metered.address) as channel:
        yield Stub(channel)


async def test_calls_are_counted_by_method_and_code_and_timed(
    metered: SessionServer, metered_stub: Stub
) -> None:
    assert metered.metrics_port is not None
    stub = metered_stub
    session = await create(stub)
    missing = await rpc_error(
        stub.GetSession(pb.GetSessionRequest(user_id="user-1", session_id="nope"))
    )
    events = await run(stub, session, "Hello")

    samples = await scrape(metered.metrics_port)

    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert events[-1].WhichOneof("event") == "completed"
    requests = "sessions_rpc_requests_total"
    assert value(samples, requests, method="CreateSession", code="OK") == 1
    assert value(samples, requests, method="GetSession", code="NOT_FOUND") == 1
    assert value(samples, requests, method="GetSession", code="OK") == 0
    assert value(samples, requests, method="Run", code="OK") == 1
    count = "sessions_rpc_duration_seconds_count"
    assert value(samples, count, method="CreateSession") == 1
    assert value(samples, count, method="GetSession") == 1
    assert value(samples, count, method="Run") == 1
    assert value(samples, "sessions_rpc_duration_seconds_sum", method="Run") > 0
    assert value(samples, "sessions_runs_in_flight") == 0
    turns = "sessions_agent_turns_total"
    assert value(samples, turns, agent_id="echo", outcome="completed") == 1
    agent_count = "sessions_agent_turn_duration_seconds_count"
    assert value(samples, agent_count, agent_id="echo") == 1
    assert value(samples, "sessions_agent_turn_duration_seconds_sum", agent_id="echo") > 0
    # Every store call is timed by operation; a missing session is an answer, not an error.
    store_count = "sessions_store_duration_seconds_count"
    for operation in ("create", "get", "begin_turn", "finish_turn"):
        assert value(samples, store_count, operation=operation) == 1, operation
        assert value(samples, "sessions_store_duration_seconds_sum", operation=operation) > 0
    assert value(samples, store_count, operation="ping") >= 1  # the health checks
    assert value(samples, store_count, operation="list") == 0
    assert not any(
        name == "sessions_store_errors_total" and count for (name, _), count in samples.items()
    )
    # Health checks are not counted.
    assert not any(name == requests and ("method", "Check") in labels for name, labels in samples)


async def test_agent_turns_by_outcome_and_runs_in_flight(
    metered: SessionServer, metered_stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    assert metered.metrics_port is not None
    stub = metered_stub
    session = await create(stub, agent_id="scripted")
    failed = await rpc_error(run(stub, session, "explode"))
    # An id the table lacks is answered by the default agent, and labelled with its id.
    await run(stub, await create(stub, agent_id="made-up-by-a-client"), "Hi")
    await run(stub, session, "Hello", request_id="r-1")
    await run(stub, session, "Hello", request_id="r-1")  # a replay: no agent turn

    hanging = stub.Run(pb.RunRequest(user_id="user-1", session_id=session.session_id, input="hang"))
    await scripted_agent.started.wait()
    during = await scrape(metered.metrics_port)
    hanging.cancel()
    await asyncio.wait_for(scripted_agent.cancelled.wait(), 5)
    for _ in range(100):  # the server finishes the cancelled call on its own time
        after = await scrape(metered.metrics_port)
        if value(after, "sessions_runs_in_flight") == 0:
            break
        await asyncio.sleep(0.02)

    assert failed.code() == grpc.StatusCode.INTERNAL
    assert value(during, "sessions_runs_in_flight") == 1
    assert value(after, "sessions_runs_in_flight") == 0
    turns = "sessions_agent_turns_total"
    assert value(after, turns, agent_id="scripted", outcome="failed") == 1
    assert value(after, turns, agent_id="scripted", outcome="completed") == 1
    assert value(after, turns, agent_id="scripted", outcome="cancelled") == 1
    assert value(after, turns, agent_id="echo", outcome="completed") == 1
    # Completed and failed turns are timed; the cancelled one is not (nor the replay).
    agent_count = "sessions_agent_turn_duration_seconds_count"
    assert value(after, agent_count, agent_id="scripted") == 2
    assert value(after, agent_count, agent_id="echo") == 1
    assert not any(("agent_id", "made-up-by-a-client") in labels for _, labels in after)
    requests = "sessions_rpc_requests_total"
    assert value(after, requests, method="Run", code="INTERNAL") == 1
    assert value(after, requests, method="Run", code="OK") == 3
    assert value(after, requests, method="Run", code="CANCELLED") == 1


async def test_an_agent_turn_is_timed_from_the_agent_call_to_its_end(
    metered: SessionServer, metered_stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    assert metered.metrics_port is not None
    session = await create(metered_stub, agent_id="scripted")
    await run(metered_stub, session, "pause")  # the agent waits pause_s between two chunks

    samples = await scrape(metered.metrics_port)

    seconds = value(samples, "sessions_agent_turn_duration_seconds_sum", agent_id="scripted")
    run_seconds = value(samples, "sessions_rpc_duration_seconds_sum", method="Run")
    assert scripted_agent.pause_s <= seconds < run_seconds


async def test_sessions_created_and_ended_count_the_calls_answered_ok(
    metered: SessionServer, metered_stub: Stub
) -> None:
    assert metered.metrics_port is not None
    stub = metered_stub
    ended = await create(stub)
    deleted = await create(stub)
    await stub.ImportSession(
        pb.ImportSessionRequest(
            snapshot=pb.SessionSnapshot(
                session_id="restored",
                user_id="user-1",
                agent_id="echo",
                turns=[pb.Turn(index=1, status=pb.TURN_STATUS_COMPLETED, input="q", output="a")],
            )
        )
    )
    taken = await rpc_error(create(stub, session_id="restored"))
    await stub.EndSession(pb.EndSessionRequest(user_id="user-1", session_id=ended.session_id))
    await stub.DeleteSession(
        pb.DeleteSessionRequest(user_id="user-1", session_id=deleted.session_id)
    )
    missing = await rpc_error(
        stub.EndSession(pb.EndSessionRequest(user_id="user-1", session_id="nope"))
    )

    samples = await scrape(metered.metrics_port)

    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert value(samples, "sessions_created_total") == 3
    assert value(samples, "sessions_ended_total") == 2
    store_count = "sessions_store_duration_seconds_count"
    assert value(samples, store_count, operation="create") == 3
    assert value(samples, store_count, operation="import_session") == 1
    assert value(samples, store_count, operation="end") == 2
    assert value(samples, store_count, operation="delete") == 1


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


async def test_a_redis_outage_counts_store_errors_by_operation(
    private_redis: RedisServer, key_prefix: str
) -> None:
    server = SessionServer(
        server_settings(private_redis.url, key_prefix, metrics_address="127.0.0.1:0")
    )
    await server.start()
    port = server.metrics_port
    assert port is not None
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            session = await create(stub)
            await run(stub, session, "before the outage")
            before = await scrape(port)
            private_redis.stop()
            get_error = await rpc_error(
                stub.GetSession(
                    pb.GetSessionRequest(user_id="user-1", session_id=session.session_id)
                )
            )
            run_error = await rpc_error(run(stub, session, "anyone?"))
        after = await scrape(port)
    finally:
        await server.stop(0)

    assert get_error.code() == run_error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(get_error).reason == "STORE_UNAVAILABLE"
    errors = "sessions_store_errors_total"
    for operation in ("get", "begin_turn"):
        assert value(before, errors, operation=operation, error="StoreUnavailable") == 0
        assert value(after, errors, operation=operation, error="StoreUnavailable") == 1
    # Failed calls are timed too.
    store_count = "sessions_store_duration_seconds_count"
    assert value(after, store_count, operation="get") == 1
    assert value(after, store_count, operation="begin_turn") == 2
    assert value(after, store_count, operation="finish_turn") == 1
    # The refused Run reached no agent: no agent turn, timed or counted.
    assert value(after, "sessions_agent_turn_duration_seconds_count", agent_id="echo") == 1


async def test_refused_tokens_are_counted_unauthenticated() -> None:
    server = SessionServer(
        server_settings(
            "memory://", "metrics:", metrics_address="127.0.0.1:0", auth_tokens="secret"
        )
    )
    await server.start()
    port = server.metrics_port
    assert port is not None
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            error = await rpc_error(create(Stub(channel)))
        samples = await scrape(port)
    finally:
        await server.stop(0)

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    refused = {"method": "CreateSession", "code": "UNAUTHENTICATED"}
    assert value(samples, "sessions_rpc_requests_total", **refused) == 1


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_without_a_metrics_address_nothing_listens_and_stop_closes_it() -> None:
    plain = SessionServer(server_settings("memory://", "metrics:"))
    await plain.start()
    try:
        assert plain.metrics is None and plain.metrics_port is None
        assert not isinstance(plain.store, MeteredSessionStore)  # no cost without metrics
    finally:
        await plain.stop(0)

    port = free_port()
    metered = SessionServer(
        server_settings("memory://", "metrics:", metrics_address=f"127.0.0.1:{port}")
    )
    await metered.start()
    assert await asyncio.to_thread(_listening, port)
    await metered.stop(0)
    assert not await asyncio.to_thread(_listening, port)


def test_metrics_address_and_log_format_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONS_METRICS_ADDRESS", "127.0.0.1:9464")
    monkeypatch.setenv("SESSIONS_LOG_FORMAT", "json")
    settings = Settings.model_validate({})
    assert (settings.metrics_address, settings.log_format) == ("127.0.0.1:9464", "json")
    with pytest.raises(ValidationError):
        Settings.model_validate({"metrics_address": "9464"})
    with pytest.raises(ValidationError):
        Settings.model_validate({"log_format": "xml"})


def test_json_log_lines_parse_with_their_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.json_logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("turn %d of %s failed", 3, "s-1", extra={"session_id": "s-1", "turn": 3})
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            logger.exception("unexpected")
        logger.info("an odd extra", extra={"thing": object()})
    finally:
        logger.removeHandler(handler)

    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]

    assert len(lines) == 3
    first = entries[0]
    assert first["level"] == "INFO" and first["logger"] == "tests.json_logs"
    assert first["message"] == "turn 3 of s-1 failed"
    assert (first["session_id"], first["turn"]) == ("s-1", 3)
    assert first["time"].endswith("+00:00")
    assert entries[1]["level"] == "ERROR" and "RuntimeError: boom" in entries[1]["exception"]
    assert entries[2]["thing"].startswith("<object")


async def test_folded_turns_are_counted_from_the_session_logic(
    metered: SessionServer, metered_stub: Stub
) -> None:
    assert metered.metrics_port is not None
    session = await create(metered_stub)
    for text in ("one", "two", "three"):
        await run(metered_stub, session, text)

    await metered_stub.CompressSession(
        pb.CompressSessionRequest(user_id="user-1", session_id=session.session_id, keep_last=1)
    )
    samples = await scrape(metered.metrics_port)

    assert value(samples, "sessions_folded_turns_total") == 2
