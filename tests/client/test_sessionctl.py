"""sessionctl, the console script, run as a subprocess against a live server on each store.

The address reaches it through SESSIONS_ADDRESS, to prove that it is honoured, except
where a test is about --address. Tables are drawn 80 columns wide, as for a pipe.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent_sessions_client import InvalidArgumentError, SessionClient
from agent_sessions_client.cli import main
from agent_sessions_client.cli._values import address as parse_address
from launchers.redis_server import free_port

SESSIONCTL = str(Path(sys.executable).parent / "sessionctl")


def sessionctl(
    address: str | None, *args: str, stdin: str = "", columns: int = 80
) -> subprocess.CompletedProcess[str]:
    """Runs sessionctl with SESSIONS_ADDRESS set to ``address`` (unset for None)."""
    env = {**os.environ, "COLUMNS": str(columns)}
    env.pop("SESSIONS_TOKEN", None)
    env.pop("SESSIONS_ADDRESS", None)
    if address is not None:
        env["SESSIONS_ADDRESS"] = address
    # stdin is always a pipe, so that nothing waits for the terminal of the test run.
    return subprocess.run(
        [SESSIONCTL, *args], input=stdin, capture_output=True, text=True, env=env, timeout=30
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def json_error(stderr: str) -> dict[str, Any]:
    """The error a ``--json`` call printed: the one line on its stderr, as an object."""
    (line,) = stderr.splitlines()
    error: dict[str, Any] = json.loads(line)["error"]
    return error


def create(address: str, user_id: str, *options: str) -> str:
    result = sessionctl(address, "create", "--user", user_id, "--agent", "echo", "--json", *options)
    assert result.returncode == 0, result.stderr
    session_id: str = json.loads(result.stdout)["session_id"]
    return session_id


def test_create_then_get_shows_the_session_as_a_table_and_as_json(
    live_server: str, user_id: str
) -> None:
    session_id = create(
        live_server,
        user_id,
        "--ttl", "48h", "--idle-timeout", "90s", "--max-turns", "5",
        "--state", '{"city": "Shanghai"}', "--label", "channel=web",
    )  # fmt: skip

    table = sessionctl(live_server, "get", "--user", user_id, session_id)
    as_json = sessionctl(live_server, "--json", "get", "--user", user_id, session_id)

    assert table.returncode == 0, table.stderr
    for shown in (session_id, user_id, "ACTIVE", "channel=web", '{"city": "Shanghai"}'):
        assert shown in table.stdout
    assert re.search(r"^ttl +2d\b", table.stdout, re.MULTILINE)
    session = json.loads(as_json.stdout)
    assert (session["session_id"], session["user_id"], session["agent_id"]) == (
        session_id,
        user_id,
        "echo",
    )
    assert (session["ttl_seconds"], session["idle_timeout_seconds"], session["max_turns"]) == (
        172800,
        90,
        5,
    )
    assert (session["state"], session["labels"]) == ({"city": "Shanghai"}, {"channel": "web"})


def test_list_pages_through_more_sessions_than_one_page(live_server: str, user_id: str) -> None:
    created = {create(live_server, user_id) for _ in range(5)}

    listed = sessionctl(live_server, "list", "--user", user_id, "--page-size", "2", "--json")
    table = sessionctl(live_server, "list", "--user", user_id, "--page-size", "2")
    limited = sessionctl(live_server, "list", "--user", user_id, "--limit", "3", "--json")

    assert {session["session_id"] for session in json_lines(listed.stdout)} == created
    assert len(json_lines(listed.stdout)) == 5
    assert all(session_id in table.stdout for session_id in created)
    assert len(json_lines(limited.stdout)) == 3


def test_run_streams_the_reply_to_an_argument(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)

    result = sessionctl(live_server, "run", "--user", user_id, session_id, "Hi")

    assert (result.returncode, result.stdout) == (0, "Echo (turn 1): Hi\n")


def test_run_reads_the_input_from_stdin(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)
    sessionctl(live_server, "run", "--user", user_id, session_id, "Hi")

    result = sessionctl(live_server, "run", "--user", user_id, session_id, stdin="Bye\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout == 'Echo (turn 2): Bye (previous: "Hi")\n'


def test_turns_lists_the_history(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)
    for text in ("Hi", "Bye"):
        sessionctl(live_server, "run", "--user", user_id, session_id, text)

    listed = sessionctl(live_server, "turns", "--user", user_id, session_id, "--json")
    table = sessionctl(live_server, "turns", "--user", user_id, session_id)
    newest = sessionctl(
        live_server, "turns", "--user", user_id, session_id, "--newest-first", "--limit", "1",
        "--json",
    )  # fmt: skip

    turns = json_lines(listed.stdout)
    assert [(t["index"], t["status"], t["input"]) for t in turns] == [
        (1, "COMPLETED", "Hi"),
        (2, "COMPLETED", "Bye"),
    ]
    assert turns[1]["output"] == 'Echo (turn 2): Bye (previous: "Hi")'
    assert "COMPLETED" in table.stdout
    assert "Echo (turn 1): Hi" in table.stdout
    assert [t["index"] for t in json_lines(newest.stdout)] == [2]


def test_state_set_then_get(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id, "--state", '{"old": true}')

    changed = sessionctl(
        live_server, "state", "set", "--user", user_id, session_id,
        "plan=pro", "count=3", 'tags=["a", "b"]', "--remove", "old",
    )  # fmt: skip
    whole = sessionctl(live_server, "state", "get", "--user", user_id, session_id, "--json")
    one = sessionctl(live_server, "state", "get", "--user", user_id, session_id, "plan")
    missing = sessionctl(live_server, "state", "get", "--user", user_id, session_id, "nope")

    assert changed.returncode == 0, changed.stderr
    assert json.loads(whole.stdout) == {"plan": "pro", "count": 3, "tags": ["a", "b"]}
    assert one.stdout == "pro\n"
    assert missing.returncode == 3


def test_end_then_run_fails_with_exit_5(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)

    ended = sessionctl(live_server, "end", "--user", user_id, session_id, "--json")
    run = sessionctl(live_server, "run", "--user", user_id, session_id, "Hi", "--json")

    assert json.loads(ended.stdout)["status"] == "ENDED"
    assert run.returncode == 5
    assert json_error(run.stderr)["reason"] == "SESSION_ENDED"
    assert run.stdout == ""


def test_compress_folds_the_older_turns_and_prints_the_summary(
    live_server: str, user_id: str
) -> None:
    session_id = create(live_server, user_id)
    for text in ("Hi. There", "How are you?", "Bye"):
        sessionctl(live_server, "run", "--user", user_id, session_id, text)

    folded = sessionctl(live_server, "compress", "--user", user_id, session_id, "--keep-last", "1")
    again = sessionctl(live_server, "compress", "--user", user_id, session_id, "--json")
    shown = sessionctl(live_server, "get", "--user", user_id, session_id)
    as_json = sessionctl(live_server, "get", "--user", user_id, session_id, "--json")
    turns = sessionctl(live_server, "turns", "--user", user_id, session_id, "--json")

    assert folded.returncode == 0, folded.stderr
    assert "Folded 2 turn(s)" in folded.stdout
    assert "extractive summarizer" in folded.stdout
    assert "Turn 1: user: Hi. | agent: Echo (turn 1): Hi." in folded.stdout
    assert "Turn 2: user: How are you?" in folded.stdout
    assert again.returncode == 0, again.stderr
    response = json.loads(again.stdout)
    assert (response["folded_turns"], response["summarizer"]) == (0, "")
    assert response["session"]["folded_turns"] == 2
    assert response["session"]["summary"].startswith("Turn 1: user: Hi.")
    assert re.search(r"^history +1 turn\(s\), \d+ B; turns 1-2 folded", shown.stdout, re.M)
    session = json.loads(as_json.stdout)
    assert (session["turn_count"], session["total_turns"], session["folded_turns"]) == (3, 3, 2)
    assert session["history_bytes"] > 0
    assert [t["index"] for t in json_lines(turns.stdout)] == [3]


def test_compress_of_an_unknown_session_exits_3(live_server: str, user_id: str) -> None:
    result = sessionctl(live_server, "compress", "--user", user_id, "no-such-session", "--json")
    negative = sessionctl(live_server, "compress", "--user", user_id, "s", "--keep-last", "-1")

    assert result.returncode == 3
    assert json_error(result.stderr)["reason"] == "SESSION_NOT_FOUND"
    assert result.stdout == ""
    assert negative.returncode == 2


def test_delete_then_get_exits_3(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)

    unconfirmed = sessionctl(live_server, "delete", "--user", user_id, session_id)
    deleted = sessionctl(live_server, "delete", "--user", user_id, session_id, "--yes")
    read = sessionctl(live_server, "get", "--user", user_id, session_id, "--json")

    assert unconfirmed.returncode == 2  # stdin is no terminal to ask on, and no --yes
    assert deleted.returncode == 0, deleted.stderr
    assert read.returncode == 3
    assert json_error(read.stderr)["reason"] == "SESSION_NOT_FOUND"


def test_invalid_input_exits_2_with_the_servers_message(live_server: str, user_id: str) -> None:
    with SessionClient(live_server) as client, pytest.raises(InvalidArgumentError) as refused:
        client.create_session(user_id=user_id, agent_id="")

    result = sessionctl(live_server, "create", "--user", user_id, "--agent", "")
    bad_duration = sessionctl(
        live_server, "create", "--user", user_id, "--agent", "a", "--ttl", "x"
    )

    assert result.returncode == 2
    assert result.stderr == f"sessionctl: {refused.value.message}\n"
    assert bad_duration.returncode == 2
    assert "invalid duration" in bad_duration.stderr


def test_an_unreachable_address_exits_4_quickly() -> None:
    nobody = f"127.0.0.1:{free_port()}"
    started = time.monotonic()

    result = sessionctl(nobody, "--timeout", "2", "get", "--user", "u", "s")

    assert result.returncode == 4
    assert result.stderr.startswith(f"sessionctl: cannot reach {nobody}: ")
    assert time.monotonic() - started < 5


def test_export_then_import_under_a_new_user_restores_the_turns(
    live_server: str, user_id: str, tmp_path: Path
) -> None:
    first, second = create(live_server, user_id), create(live_server, user_id)
    for text in ("Hi", "Bye"):
        sessionctl(live_server, "run", "--user", user_id, first, text)
    sessionctl(live_server, "compress", "--user", user_id, first, "--keep-last", "1")
    sessionctl(live_server, "end", "--user", user_id, second)
    exported = tmp_path / "sessions.jsonl"
    new_user = f"{user_id}-restored"

    export = sessionctl(live_server, "export", "--user", user_id, "--output", str(exported))
    imported = sessionctl(live_server, "import", str(exported), "--user", new_user)
    again = sessionctl(
        live_server, "import", "--user", new_user, "--json", stdin=exported.read_text()
    )

    assert export.returncode == 0, export.stderr
    assert len(exported.read_text().splitlines()) == 2
    assert imported.returncode == 0, imported.stderr
    assert "Imported 2 session(s); 0 already existed; 0 failed." in imported.stdout
    assert json.loads(again.stdout) == {"imported": 0, "already_existing": 2, "failed": 0}
    assert again.returncode == 0
    before = sessionctl(live_server, "turns", "--user", user_id, first, "--json")
    after = sessionctl(live_server, "turns", "--user", new_user, first, "--json")
    assert json_lines(after.stdout) == json_lines(before.stdout)
    copied = sessionctl(live_server, "get", "--user", new_user, first, "--json")
    assert json.loads(copied.stdout)["folded_turns"] == 1  # compressed before the export
    ended = sessionctl(live_server, "get", "--user", new_user, second, "--json")
    assert json.loads(ended.stdout)["status"] == "ENDED"


def test_chat_runs_two_turns_with_context_then_quits(live_server: str, user_id: str) -> None:
    result = sessionctl(
        live_server, "chat", "--user", user_id, "--agent", "echo", stdin="Hi\nHow are you?\n/quit\n"
    )

    assert result.returncode == 0, result.stderr
    assert "agent> Echo (turn 1): Hi\n" in result.stdout
    assert 'agent> Echo (turn 2): How are you? (previous: "Hi")\n' in result.stdout
    (session,) = json_lines(sessionctl(live_server, "list", "--user", user_id, "--json").stdout)
    assert session["turn_count"] == 2


def test_without_rich_it_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # makes `import rich` fail

    assert main(["list", "--user", "u"]) == 1
    assert "pip install 'agent-sessions-client[cli]'" in capsys.readouterr().err


def test_chat_in_a_real_terminal_streams_replies_and_quits(live_server: str, user_id: str) -> None:
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [SESSIONCTL, "chat", "--user", user_id, "--agent", "echo"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "SESSIONS_ADDRESS": live_server, "TERM": "dumb"},
        close_fds=True,
    )
    os.close(secondary)
    try:
        screen = read_until(primary, "you> ")
        os.write(primary, b"How's the weather in Shanghai?\n")
        screen += read_until(primary, "you> ")
        os.write(primary, b"What about Beijing?\n")
        screen += read_until(primary, "you> ")
        os.write(primary, b"/quit\n")
        screen += read_until(primary, "Resume with")
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        os.close(primary)

    assert "agent> Echo (turn 1): How's the weather in Shanghai?" in screen
    assert "Echo (turn 2): What about Beijing? (previous: \"How's the weather" in screen


def read_until(fd: int, marker: str, timeout: float = 15) -> str:
    """What the terminal shows until ``marker`` appears."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{marker!r} never appeared in {seen.decode(errors='replace')!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            seen += os.read(fd, 4096)
    return seen.decode(errors="replace").replace("\r\n", "\n")


def test_list_shows_the_agent_of_each_session(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)  # with the agent "echo"

    table = sessionctl(live_server, "list", "--user", user_id)

    assert table.returncode == 0, table.stderr
    assert re.search(rf"^{session_id} +echo +ACTIVE ", table.stdout, re.MULTILINE)


def test_list_never_cuts_a_session_id_on_a_narrow_terminal(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)

    table = sessionctl(live_server, "list", "--user", user_id, columns=40)

    assert re.search(rf"^{session_id} +echo ", table.stdout, re.MULTILINE)


LONG_INPUT = " ".join(f"word{i}" for i in range(40)) + " last-word"


def test_turns_shows_whole_inputs(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)
    sessionctl(live_server, "run", "--user", user_id, session_id, LONG_INPUT)

    table = sessionctl(live_server, "turns", "--user", user_id, session_id)

    assert table.returncode == 0, table.stderr
    assert table.stdout.count("last-word") == 1  # in the input; the reply's preview is cut


def test_turns_full_shows_whole_replies(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id)
    sessionctl(live_server, "run", "--user", user_id, session_id, LONG_INPUT)

    table = sessionctl(live_server, "turns", "--user", user_id, session_id, "--full")

    assert table.returncode == 0, table.stderr
    assert table.stdout.count("last-word") == 2  # the input, and the reply that echoes it


def test_chat_exits_with_the_code_of_a_failed_turn(live_server: str, user_id: str) -> None:
    too_long = "x" * 40_000  # over the server's 32 KiB limit on an input: INVALID_ARGUMENT

    result = sessionctl(
        live_server, "chat", "--user", user_id, "--agent", "echo", stdin=f"{too_long}\nHi\n/quit\n"
    )

    assert result.returncode == 2


def test_chat_prints_a_resume_command_that_works_as_printed(live_server: str, user_id: str) -> None:
    # The address is given as an option only: the printed command must carry it.
    first = sessionctl(
        None, "chat", "--user", user_id, "--agent", "echo", "--address", live_server,
        stdin="Hi\n/quit\n",
    )  # fmt: skip
    hint = re.search(r"^Resume with: (.+)$", first.stderr, re.MULTILINE)
    assert hint, first.stderr
    program, *args = shlex.split(hint.group(1))

    resumed = sessionctl(None, *args, stdin="Bye\n/quit\n")

    assert program == "sessionctl"
    assert resumed.returncode == 0, resumed.stderr
    assert 'Echo (turn 2): Bye (previous: "Hi")' in resumed.stdout


@pytest.mark.parametrize(
    "malformed",
    ["localhost", "http://127.0.0.1:50051", "", "127.0.0.1:99999", "127.0.0.1:0", "::1:50051"],
)
def test_a_malformed_address_is_a_usage_error_naming_the_forms(
    malformed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--address", malformed, "list", "--user", "u"])

    assert code == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_a_malformed_sessions_address_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SESSIONS_ADDRESS", "localhost")

    code = main(["list", "--user", "u"])

    assert code == 2
    assert "$SESSIONS_ADDRESS" in capsys.readouterr().err


@pytest.mark.parametrize(
    "well_formed",
    ["127.0.0.1:50051", "localhost:1", "sessions.internal:65535", "[::1]:50051", "unix:/run/s"],
)
def test_an_address_is_host_port_bracketed_ipv6_port_or_unix_path(well_formed: str) -> None:
    assert parse_address(well_formed) == well_formed


def test_with_json_a_failed_call_is_one_json_object_on_stderr(
    live_server: str, user_id: str
) -> None:
    result = sessionctl(live_server, "get", "--user", user_id, "no-such-session", "--json")

    error = json_error(result.stderr)
    assert result.returncode == 3
    assert (error["code"], error["reason"]) == ("NOT_FOUND", "SESSION_NOT_FOUND")
    assert error["metadata"] == {"session_id": "no-such-session"}


def test_with_json_a_usage_error_is_one_json_object_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--json", "get", "--user", "u"])  # no SESSION

    assert code == 2
    assert json_error(capsys.readouterr().err)["code"] == "INVALID_ARGUMENT"


def test_items_lists_a_weather_turns_tool_call_and_result(live_server: str, user_id: str) -> None:
    session_id = create(live_server, user_id, "--agent", "weather")
    sessionctl(live_server, "run", "--user", user_id, session_id, "Weather in Shanghai?")

    listed = sessionctl(live_server, "--json", "items", "--user", user_id, session_id)
    last = sessionctl(live_server, "items", "--user", user_id, session_id, "--last", "2")

    assert listed.returncode == 0, listed.stderr
    kinds = [json.loads(line)["type"] for line in listed.stdout.splitlines()]
    assert kinds == ["MESSAGE", "TOOL_CALL", "TOOL_RESULT", "MESSAGE"]
    assert last.returncode == 0, last.stderr
    assert "tool_result" in last.stdout and "tool_call" not in last.stdout
