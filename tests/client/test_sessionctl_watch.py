"""``sessionctl watch``, and ``sessionctl chat`` resuming a reply after its connection
dropped, run as subprocesses against a live server on each store.

The dropped connections are real: sessionctl talks to the server through a TCP proxy
(test_client_watch.DroppingProxy) that cuts every open connection when told to.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_sessions_client import SessionClient
from tests.client.test_client_watch import (  # noqa: F401  # scripted_server is a fixture
    DroppingProxy,
    scripted_server,
)
from tests.client.test_sessionctl import SESSIONCTL, create, sessionctl

WAIT_S = 20.0


class Background:
    """sessionctl commands running in the background, their output read as it comes;
    killed, and their pipes closed, when the test ends."""

    def __init__(self) -> None:
        self._processes: list[subprocess.Popen[bytes]] = []

    def __call__(self, address: str, *args: str, stdin: str = "") -> subprocess.Popen[bytes]:
        env = {**os.environ, "SESSIONS_ADDRESS": address, "COLUMNS": "80"}
        env.pop("SESSIONS_TOKEN", None)
        process = subprocess.Popen(
            [SESSIONCTL, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._processes.append(process)
        assert process.stdin is not None
        process.stdin.write(stdin.encode())
        process.stdin.close()
        return process

    def close(self) -> None:
        for process in self._processes:
            process.kill()
            process.wait()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()


@pytest.fixture
def start() -> Iterator[Background]:
    background = Background()
    yield background
    background.close()


class Reader:
    """What a background process has written to one of its pipes so far."""

    def __init__(self, pipe: Any) -> None:
        self._fd: int = pipe.fileno()
        self.seen = b""

    def until(self, marker: str, timeout: float = WAIT_S) -> str:
        """Everything written until ``marker`` appears."""
        deadline = time.monotonic() + timeout
        while marker.encode() not in self.seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{marker!r} never came: {self.text!r}"
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                chunk = os.read(self._fd, 65536)
                assert chunk, f"the pipe closed before {marker!r}: {self.text!r}"
                self.seen += chunk
        return self.text

    def rest(self) -> str:
        """Everything, once the process ended."""
        while chunk := os.read(self._fd, 65536):
            self.seen += chunk
        return self.text

    @property
    def text(self) -> str:
        return self.seen.decode(errors="replace")


@pytest.fixture
def proxy(live_server: str) -> Iterator[DroppingProxy]:
    made = DroppingProxy(live_server)
    yield made
    made.close()


@pytest.fixture
def scripted_proxy(scripted_server: str) -> Iterator[DroppingProxy]:  # noqa: F811
    made = DroppingProxy(scripted_server)
    yield made
    made.close()


def finish(process: subprocess.Popen[bytes]) -> int:
    return process.wait(timeout=WAIT_S)


def test_watch_prints_a_turn_and_exits_0_when_the_session_is_deleted(
    live_server: str, user_id: str, start: Background
) -> None:
    session_id = create(live_server, user_id)
    watch = start(live_server, "watch", "--user", user_id, session_id, "--after", "0")
    out, err = Reader(watch.stdout), Reader(watch.stderr)

    assert sessionctl(live_server, "run", "--user", user_id, session_id, "Hi").returncode == 0
    out.until("turn 1 COMPLETED")
    deleted = sessionctl(live_server, "delete", "--user", user_id, session_id, "--yes")

    assert deleted.returncode == 0, deleted.stderr
    assert finish(watch) == 0, err.rest()
    err.rest()
    lines = out.rest().splitlines()
    assert any(re.search(r"#\d+ turn 1 started, run \w+$", line) for line in lines)
    assert "Echo (turn 1): Hi" in lines  # the deltas, on a line of their own
    assert any("turn 1 COMPLETED (input: Hi)" in line for line in lines)
    assert lines[-1].endswith("session deleted")
    assert f"Watching session {session_id}" in err.text


def test_watch_json_prints_one_object_per_event(
    live_server: str, user_id: str, start: Background
) -> None:
    session_id = create(live_server, user_id)
    watch = start(live_server, "watch", "--user", user_id, session_id, "--after", "0", "--json")
    out = Reader(watch.stdout)

    sessionctl(live_server, "run", "--user", user_id, session_id, "Hi")
    out.until('"turn_committed"')
    sessionctl(live_server, "delete", "--user", user_id, session_id, "--yes")

    assert finish(watch) == 0
    events = [json.loads(line) for line in out.rest().splitlines()]
    kinds = [event["kind"] for event in events]
    assert kinds[0] == "run_started" and kinds[-2:] == ["turn_committed", "deleted"]
    assert "".join(e["text"] for e in events if e["kind"] == "delta") == "Echo (turn 1): Hi"
    committed = events[-2]
    assert committed["turn"]["output"] == "Echo (turn 1): Hi"
    assert committed["session"]["turn_count"] == 1
    sequences = [event["sequence"] for event in events]
    assert sequences == sorted(set(sequences))
    assert set(events[0]) == {
        "kind", "sequence", "time", "run_id", "turn_index", "replayed", "text", "item",
        "turn", "session", "first_available_sequence",
    }  # fmt: skip


def test_watch_of_an_unknown_session_exits_3(live_server: str, user_id: str) -> None:
    result = sessionctl(live_server, "watch", "--user", user_id, "no-such-session")

    assert result.returncode == 3
    assert "not found" in result.stderr


def test_ctrl_c_stops_a_watch_quietly(live_server: str, user_id: str, start: Background) -> None:
    session_id = create(live_server, user_id)
    watch = start(live_server, "watch", "--user", user_id, session_id)
    err = Reader(watch.stderr)
    err.until("Ctrl-C stops")
    time.sleep(0.3)  # the watch call is made

    watch.send_signal(signal.SIGINT)

    assert finish(watch) == 0
    assert "Traceback" not in err.rest()


def test_watch_reconnects_after_a_dropped_connection_without_repeating_events(
    live_server: str, proxy: DroppingProxy, user_id: str, start: Background
) -> None:
    session_id = create(live_server, user_id)
    watch = start(proxy.address, "watch", "--user", user_id, session_id, "--after", "0")
    out, err = Reader(watch.stdout), Reader(watch.stderr)
    sessionctl(live_server, "run", "--user", user_id, session_id, "one")
    out.until("turn 1 COMPLETED")

    proxy.drop()
    sessionctl(live_server, "run", "--user", user_id, session_id, "two")
    out.until("turn 2 COMPLETED")
    sessionctl(live_server, "delete", "--user", user_id, session_id, "--yes")

    assert finish(watch) == 0, err.rest()
    err.rest()
    lines = out.rest().splitlines()
    assert lines.count("Echo (turn 1): one") == 1
    assert lines.count('Echo (turn 2): two (previous: "one")') == 1
    assert "reconnecting after #" in err.text


def test_chat_resumes_a_reply_after_its_connection_dropped(
    scripted_server: str,  # noqa: F811
    scripted_proxy: DroppingProxy,
    user_id: str,
    start: Background,
) -> None:
    chat = start(
        scripted_proxy.address, "chat", "--user", user_id, "--agent", "scripted",
        stdin="pause\n/quit\n",
    )  # fmt: skip
    out, err = Reader(chat.stdout), Reader(chat.stderr)
    out.until("first half, ")  # the agent now pauses before the second half

    scripted_proxy.drop()

    assert finish(chat) == 0, err.rest()
    assert "agent> first half, second half\n" in out.rest()
    assert "connection lost" in err.rest()
    with SessionClient(scripted_server) as client:
        (session,) = list(client.list_sessions(user_id=user_id))
        info = session.info
        turns = list(session.turns())
    assert (info.turn_count, info.total_turns) == (1, 1)  # the agent was asked once
    assert turns[0].output == "first half, second half"


def test_chat_says_so_when_a_reply_cannot_be_resumed(
    scripted_proxy: DroppingProxy, user_id: str, start: Background
) -> None:
    chat = start(
        scripted_proxy.address, "chat", "--user", user_id, "--agent", "scripted",
        stdin="pause\n/quit\n",
    )  # fmt: skip
    out, err = Reader(chat.stdout), Reader(chat.stderr)
    out.until("first half, ")

    scripted_proxy.close()  # and the server stays out of reach

    assert finish(chat) == 4  # unavailable, as a failed turn's code
    assert "could not be resumed" in err.rest()
