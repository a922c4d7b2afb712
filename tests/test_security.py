"""TLS, mutual TLS and bearer tokens: a client without the right credentials gets nothing.

Real gRPC over loopback, with a throwaway CA per test session (tests/certs.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic_settings import CliApp

from agent_sessions.api.security import UNAUTHENTICATED_MESSAGE
from agent_sessions.config import Settings
from agent_sessions.server import SessionServer
from agent_sessions_client import SessionClient
from tests.certs import Certs, KeyPair, make_certs
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, rpc_error, run
from tests.test_operations import grpcurl_path

BIN = Path(sys.executable).parent
TOKEN, SECOND_TOKEN = "token-of-the-web-frontend", "token-of-the-batch-jobs"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@asynccontextmanager
async def serving(**overrides: Any) -> AsyncIterator[SessionServer]:
    server = SessionServer(server_settings("memory://", "security:", **overrides))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(0)


def tls(certs: Certs, *, mutual: bool = False) -> dict[str, Any]:
    settings = {"tls_cert_file": certs.server.cert, "tls_key_file": certs.server.key}
    if mutual:
        settings["tls_client_ca_file"] = certs.client_ca.cert
    return settings


def presenting(certs: Certs, identity: KeyPair) -> grpc.ChannelCredentials:
    """A client's credentials: trusting the server's CA, presenting ``identity``'s certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=certs.server_ca.cert_pem(),
        private_key=identity.key_pem(),
        certificate_chain=identity.cert_pem(),
    )


def tokens(*configured: str, **overrides: Any) -> dict[str, Any]:
    return {"auth_tokens": list(configured), **overrides}


@asynccontextmanager
async def stub_for(
    server: SessionServer, credentials: grpc.ChannelCredentials | None = None
) -> AsyncIterator[Stub]:
    channel = (
        grpc.aio.secure_channel(server.address, credentials)
        if credentials
        else grpc.aio.insecure_channel(server.address)
    )
    async with channel:
        yield Stub(channel)


async def a_call(stub: Stub, **call: Any) -> pb.Session:
    session: pb.Session = await stub.CreateSession(
        pb.CreateSessionRequest(user_id="user-1", agent_id="echo"), timeout=5, **call
    )
    return session


async def refused_code(stub: Stub, **call: Any) -> grpc.StatusCode:
    error = await rpc_error(a_call(stub, **call))
    code: grpc.StatusCode = error.code()
    return code


# TLS


async def test_a_client_trusting_the_ca_is_served_over_tls(certs: Certs) -> None:
    async with serving(**tls(certs)) as server:

        def converse() -> str:
            with SessionClient(
                server.address, tls=True, root_certificates=certs.server_ca.cert_pem()
            ) as client:
                session = client.create_session(user_id="user-1", agent_id="echo")
                return session.run("hello")

        reply = await asyncio.to_thread(converse)

    assert "hello" in reply


async def test_a_plaintext_client_gets_nothing_from_a_tls_server(certs: Certs) -> None:
    async with serving(**tls(certs)) as server, stub_for(server) as stub:
        assert await refused_code(stub) == grpc.StatusCode.UNAVAILABLE


async def test_a_client_not_trusting_the_ca_gets_nothing(certs: Certs) -> None:
    other_ca = grpc.ssl_channel_credentials(root_certificates=certs.client_ca.cert_pem())
    async with serving(**tls(certs)) as server, stub_for(server, other_ca) as stub:
        assert await refused_code(stub) == grpc.StatusCode.UNAVAILABLE


# Mutual TLS


async def test_mtls_refuses_a_client_without_a_certificate(certs: Certs) -> None:
    no_certificate = grpc.ssl_channel_credentials(root_certificates=certs.server_ca.cert_pem())
    async with (
        serving(**tls(certs, mutual=True)) as server,
        stub_for(server, no_certificate) as stub,
    ):
        assert await refused_code(stub) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_a_client_certificate_from_another_ca(certs: Certs) -> None:
    stranger = presenting(certs, certs.stranger)
    async with serving(**tls(certs, mutual=True)) as server, stub_for(server, stranger) as stub:
        assert await refused_code(stub) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_serves_a_client_certificate_signed_by_the_client_ca(certs: Certs) -> None:
    client = presenting(certs, certs.client)
    async with serving(**tls(certs, mutual=True)) as server, stub_for(server, client) as stub:
        session = await a_call(stub)

    assert session.session_id


# Bearer tokens


async def test_a_call_without_a_token_is_unauthenticated_and_does_nothing() -> None:
    async with serving(**tokens(TOKEN)) as server, stub_for(server) as stub:
        error = await rpc_error(
            stub.CreateSession(
                pb.CreateSessionRequest(user_id="user-1", agent_id="echo", session_id="s-1")
            )
        )
        lookup = await rpc_error(
            stub.GetSession(
                pb.GetSessionRequest(user_id="user-1", session_id="s-1"), metadata=bearer(TOKEN)
            )
        )

    assert (error.code(), error.details()) == (
        grpc.StatusCode.UNAUTHENTICATED,
        UNAUTHENTICATED_MESSAGE,
    )
    assert lookup.code() == grpc.StatusCode.NOT_FOUND


async def test_a_streamed_run_without_a_token_is_unauthenticated_and_stores_no_turn() -> None:
    async with serving(**tokens(TOKEN)) as server, stub_for(server) as stub:
        session = await a_call(stub, metadata=bearer(TOKEN))
        error = await rpc_error(run(stub, session, "hello"))
        stored = await stub.ListTurns(
            pb.ListTurnsRequest(user_id="user-1", session_id=session.session_id),
            metadata=bearer(TOKEN),
        )

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert list(stored.turns) == []


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-the-token", f"Basic {TOKEN}", TOKEN, "Bearer ", f"Bearer {TOKEN}x"],
)
async def test_a_wrong_or_malformed_token_is_unauthenticated(authorization: str) -> None:
    async with serving(**tokens(TOKEN)) as server, stub_for(server) as stub:
        code = await refused_code(stub, metadata=(("authorization", authorization),))

    assert code == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("token", [TOKEN, SECOND_TOKEN])
async def test_each_configured_token_is_accepted_through_the_client(token: str) -> None:
    async with serving(**tokens(TOKEN, SECOND_TOKEN)) as server:

        def converse() -> list[str]:
            with SessionClient(server.address, token=token) as client:
                session = client.create_session(user_id="user-1", agent_id="echo")
                session.run("hello")
                return [turn.input for turn in session.turns()]

        inputs = await asyncio.to_thread(converse)

    assert inputs == ["hello"]


# Health and reflection


async def health_check(server: SessionServer, **call: Any) -> Any:
    async with grpc.aio.insecure_channel(server.address) as channel:
        return await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="agentsessions.sessions.v1.SessionService"),
            timeout=5,
            **call,
        )


async def test_health_checks_need_no_token_by_default() -> None:
    async with serving(**tokens(TOKEN)) as server:
        answer = await health_check(server)

    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_checks_need_the_token_when_not_left_open() -> None:
    async with serving(**tokens(TOKEN, auth_open_health_and_reflection=False)) as server:
        error = await rpc_error(health_check(server))
        answer = await health_check(server, metadata=bearer(TOKEN))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def grpcurl_list(server: SessionServer, *headers: str) -> tuple[int, str]:
    arguments = [arg for header in headers for arg in ("-H", header)]
    process = await asyncio.create_subprocess_exec(
        grpcurl_path(),
        "-plaintext",
        *arguments,
        server.address,
        "list",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


async def test_grpcurl_lists_the_services_without_a_token_by_default() -> None:
    async with serving(**tokens(TOKEN)) as server:
        code, shown = await grpcurl_list(server)

    assert code == 0, shown
    assert "agentsessions.sessions.v1.SessionService" in shown.split()


async def test_reflection_needs_the_token_when_not_left_open() -> None:
    async with serving(**tokens(TOKEN, auth_open_health_and_reflection=False)) as server:
        refused, refusal = await grpcurl_list(server)
        listed, shown = await grpcurl_list(server, f"authorization: Bearer {TOKEN}")

    assert refused != 0 and "Unauthenticated" in refusal
    assert listed == 0, shown
    assert "agentsessions.sessions.v1.SessionService" in shown.split()


# Configuration and operation


def test_tokens_come_from_the_environment_comma_separated_or_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SESSIONS_AUTH_TOKENS", f" {TOKEN}, {SECOND_TOKEN},")
    from_list = CliApp.run(Settings, cli_args=[])
    monkeypatch.setenv("SESSIONS_AUTH_TOKENS", f'["{TOKEN}", "{SECOND_TOKEN}"]')
    from_json = CliApp.run(Settings, cli_args=[])

    for settings in (from_list, from_json):
        assert [t.get_secret_value() for t in settings.auth_tokens] == [TOKEN, SECOND_TOKEN]
        assert TOKEN not in repr(settings)


async def test_the_log_names_the_security_mode_but_never_a_token(
    certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="agent_sessions"):
        async with serving(**tls(certs, mutual=True), **tokens(TOKEN, SECOND_TOKEN)):
            pass

    assert "mTLS, bearer tokens required (2 configured)" in caplog.text
    assert TOKEN not in caplog.text and SECOND_TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--tls-cert-file", "{server.pem}"], "tls_key_file"),
        (["--tls-key-file", "{server.key}"], "tls_key_file"),
        (["--tls-cert-file", "{missing.pem}", "--tls-key-file", "{server.key}"], "tls_cert_file"),
    ],
)
def test_the_server_refuses_to_start_with_unusable_tls_settings(
    certs: Certs, flags: list[str], named: str
) -> None:
    directory = certs.server.cert.parent
    arguments = [str(directory / f[1:-1]) if f.startswith("{") else f for f in flags]
    result = subprocess.run(
        [str(BIN / "session-server"), "--address", "127.0.0.1:0", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert named in result.stderr


@pytest.mark.parametrize("ca_from", ["flag", "environment"])
async def test_sessionctl_talks_to_a_tls_server_with_a_token(certs: Certs, ca_from: str) -> None:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("SESSIONS_TOKEN", "SESSIONS_CA_FILE", "SESSIONS_ADDRESS")
    }
    ca = ["--ca-file", str(certs.server_ca.cert)]
    if ca_from == "environment":
        env["SESSIONS_CA_FILE"], ca = str(certs.server_ca.cert), []
    async with serving(**tls(certs), **tokens(TOKEN)) as server:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "sessionctl"),
            "--address", server.address, "--tls", *ca, "--token", TOKEN,
            "create", "--user", "user-1", "--agent", "echo", "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=20)

    assert process.returncode == 0, err.decode()
    assert '"session_id"' in out.decode()
