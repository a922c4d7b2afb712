"""The client examples run against a live server and show what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"


def run_example(name: str, address: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env={**os.environ, "SESSIONS_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_the_seed_conversation_keeps_its_context(live_server: str) -> None:
    out = run_example("conversation.py", live_server)

    # "What about Beijing?" names no topic: the weather agent takes it from the session.
    assert "Agent: Beijing is cloudy today, 18°C" in out
    assert "ended after 3 turns" in out


def test_the_multi_user_manager_resumes_each_users_session(live_server: str) -> None:
    lines = run_example("multi_user.py", live_server).splitlines()

    alice = [line for line in lines if line.startswith("[alice")]
    bob = [line for line in lines if line.startswith("[bob")]
    assert len(alice) == len(bob) == 2
    assert alice[0].split("]")[0] == alice[1].split("]")[0]  # the same session both times
    assert alice[1].endswith('(previous: "How\'s the weather in Shanghai?")')
    assert bob[1].endswith('(previous: "Book a table for two")')
