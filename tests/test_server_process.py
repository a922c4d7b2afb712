"""The session-server command as an operator runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent_sessions.config import Settings
from tests.processes import wait_until_serving
from tests.redis_server import free_port

SESSION_SERVER = str(Path(sys.executable).parent / "session-server")


def test_help_documents_every_setting() -> None:
    shown = subprocess.run(
        [SESSION_SERVER, "--help"], capture_output=True, text=True, check=True
    ).stdout

    for name in Settings.model_fields:
        flag = "--store" if name == "store_url" else "--" + name.replace("_", "-")
        assert flag in shown, f"{flag} missing from --help"


def test_an_unsupported_store_url_is_refused_naming_the_setting() -> None:
    result = subprocess.run(
        [SESSION_SERVER, "--store", "ftp://example"], capture_output=True, text=True
    )

    assert result.returncode == 2
    assert "store" in result.stderr and "memory://" in result.stderr


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
    assert "shutting down" in log
