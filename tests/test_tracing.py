"""OpenTelemetry tracing of a real session-server process: gRPC spans and Redis spans."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
from agentsessions.sessions.v1 import sessions_pb2 as pb
from agentsessions.sessions.v1 import sessions_pb2_grpc

from launchers.redis_server import RedisServer, free_port
from tests.processes import wait_until_serving

SESSION_SERVER = str(Path(sys.executable).parent / "session-server")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
# A gRPC server span is named after the full method: /<package>.<service>/<method>.
METHOD_PREFIX = f"/{pb.DESCRIPTOR.services_by_name['SessionService'].full_name}/"


def spans_of(output: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed: JSON objects one after another."""
    decoder = json.JSONDecoder()
    spans, position = [], 0
    while (start := output.find("{", position)) != -1:
        span, position = decoder.raw_decode(output, start)
        spans.append(span)
    return spans


def traced_conversation(redis_server: RedisServer, key_prefix: str) -> list[dict[str, Any]]:
    """Runs two turns through a server printing its spans, the second in the caller's
    trace; the spans, once the server stopped."""
    address = f"127.0.0.1:{free_port()}"
    command = [
        SESSION_SERVER,
        *("--address", address, "--store", redis_server.url, "--key-prefix", key_prefix),
        *("--default-agent", "echo", "--otel-traces", "console", "--log-level", "WARNING"),
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        wait_until_serving(address)
        with grpc.insecure_channel(address) as channel:
            stub = sessions_pb2_grpc.SessionServiceStub(channel)
            session = stub.CreateSession(pb.CreateSessionRequest(user_id="u", agent_id="echo"))
            request = pb.RunRequest(session_id=session.session_id, user_id="u", input="Hello")
            list(stub.Run(request))  # loads the scripts into Redis (SCRIPT LOAD)
            list(stub.Run(request, metadata=(("traceparent", TRACEPARENT),)))
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=15)
    return spans_of(output)


def test_a_run_is_one_span_in_the_callers_trace_with_its_redis_scripts_beneath(
    redis_server: RedisServer, key_prefix: str
) -> None:
    spans = traced_conversation(redis_server, key_prefix)

    runs = [s for s in spans if s["name"] == f"{METHOD_PREFIX}Run"]
    [run] = [s for s in runs if s["context"]["trace_id"] == f"0x{TRACE_ID}"]
    assert len(runs) == 2
    assert run["kind"] == "SpanKind.SERVER"
    beneath = [s for s in spans if s["parent_id"] == run["context"]["span_id"]]
    assert [s["name"] for s in beneath] == ["EVALSHA", "EVALSHA"]
    assert any(s["name"] == f"{METHOD_PREFIX}CreateSession" for s in spans)


def test_a_run_span_carries_the_moments_of_its_turn(
    redis_server: RedisServer, key_prefix: str
) -> None:
    spans = traced_conversation(redis_server, key_prefix)

    [run] = [
        s
        for s in spans
        if s["name"] == f"{METHOD_PREFIX}Run" and s["context"]["trace_id"] == f"0x{TRACE_ID}"
    ]
    events = {event["name"]: event["attributes"] for event in run["events"]}
    assert list(events) == ["turn started", "agent finished", "turn committed"]
    assert events["turn started"] == {"agent_id": "echo", "turn_index": 2}
    assert events["agent finished"]["outcome"] == "completed"
    assert events["turn committed"]["turn_count"] == 2
