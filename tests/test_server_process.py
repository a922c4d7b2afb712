"""The session-server command as an operator runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent_sessions.cli import main
from agent_sessions.config import Settings
from launchers.redis_server import free_port
from tests.processes import wait_until_serving

SESSION_SERVER = str(Path(sys.executable).parent / "session-server")


@pytest.fixture(scope="module")
def help_text() -> str:
    return subprocess.run(
        [SESSION_SERVER, "--help"], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def test_help_documents_every_setting(help_text: str) -> None:
    for name in Settings.model_fields:
        flag = "--store" if name == "store_url" else "--" + name.replace("_", "-")
        assert flag in help_text, f"{flag} missing from --help"


@pytest.mark.parametrize(
    "artifact",
    [
        "{str,null}",
        "null",
        "dict[",
        "list[",
        "SecretStr",
        "Path",
        "timedelta",
        "default factory",
        "0:00:",
        "bool",
        "--sessions-store-url",
        "False",
        "True",
    ],
)
def test_help_shows_no_pydantic_spelling(help_text: str, artifact: str) -> None:
    assert artifact not in help_text


@pytest.mark.parametrize(
    "shown",
    [
        "--address HOST:PORT",
        "--metrics-address HOST:PORT",
        "--store-url URL, --store URL",
        "--agents-file FILE",
        "--tls-cert-file FILE",
        "--agents JSON",
        "--workers N",
        "--log-calls [yes|no]",
        "(default: yes)",
        "--max-ttl DURATION",
        "(default: 30 days)",
        "(default: 1 day)",
        "(default: 10 seconds)",
        "(default: 16777216 = 16 MiB)",
    ],
)
def test_help_names_values_and_defaults_in_plain_words_and_units(
    help_text: str, shown: str
) -> None:
    assert shown in " ".join(help_text.split())


def test_an_unsupported_store_url_is_refused_naming_the_setting() -> None:
    result = subprocess.run(
        [SESSION_SERVER, "--store", "ftp://example"], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 2
    assert result.stderr.startswith("session-server: store_url: unsupported store")
    assert "memory://" in result.stderr


@pytest.mark.parametrize(
    ("environment", "args", "printed"),
    [
        (
            {"SESSIONS_AGENTS": '{"a": {"kind": "nope"}}'},
            [],
            "session-server: agents.a: Input tag 'nope' found using 'kind' does not match",
        ),
        (
            {},
            ["--agents-file", "/nonexistent/agents.toml"],
            "session-server: agents_file: cannot read /nonexistent/agents.toml: No such file",
        ),
        (
            {"SESSIONS_AGENTS_FILE": "/nonexistent/agents.toml"},
            [],
            "session-server: agents_file: cannot read /nonexistent/agents.toml: No such file",
        ),
        (
            {},
            ["--store", "redis://cache:6379/5x"],
            "session-server: store_url: db '5x' after the host is not a number",
        ),
        (
            {},
            ["--workers", "2"],
            "session-server: --workers 2 needs a shared store",
        ),
    ],
    ids=["agents-variable", "agents-file-flag", "agents-file-variable", "store", "workers"],
)
def test_a_configuration_error_is_one_line_on_stderr_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    environment: dict[str, str],
    args: list[str],
    printed: str,
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"SESSIONS_{name.upper()}", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit) as exited:
        main(args)

    stderr = capsys.readouterr().err
    assert exited.value.code == 2
    assert stderr.startswith(printed)
    assert stderr.count("\n") == 1, stderr


def test_a_second_server_on_a_busy_port_exits_1_naming_the_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    first = subprocess.Popen([SESSION_SERVER, "--address", address], stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(address)
        second = subprocess.run(
            [SESSION_SERVER, "--address", address], capture_output=True, text=True, timeout=30
        )
    finally:
        first.terminate()
        first.wait(timeout=15)

    assert second.returncode == 1
    assert f"cannot listen on {address}: address already in use" in second.stderr
    assert "Traceback" not in second.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_server_takes_its_address_from_the_environment_and_stops_on_a_signal(
    stop_signal: signal.Signals,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [SESSION_SERVER],
        env={**os.environ, "SESSIONS_ADDRESS": address},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(address)
        process.send_signal(stop_signal)
        _, log = process.communicate(timeout=15)
    finally:
        process.kill()

    assert process.returncode == 0
    assert "shutting down: running calls have 10 seconds to finish" in log
