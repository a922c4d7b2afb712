"""Agents that cannot be built stop the server at startup in one line, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SESSION_SERVER = str(Path(sys.executable).parent / "session-server")


def start(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SESSION_SERVER, "--address", "127.0.0.1:0", *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_default_agent_the_table_does_not_name_stops_the_server_naming_it() -> None:
    result = start("--default-agent", "nobody")

    assert result.returncode == 1
    assert "--default-agent" in result.stderr and "'nobody'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_plugin_agent_that_does_not_import_stops_the_server_naming_it() -> None:
    agents = {"mine": {"kind": "plugin", "object": "no_such_module:Agent"}}

    result = start("--agents", json.dumps(agents))

    assert result.returncode == 1
    assert "agent 'mine' cannot be built" in result.stderr
    assert "no_such_module" in result.stderr
    assert "Traceback" not in result.stderr
