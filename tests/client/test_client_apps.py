"""Apps through the client and sessionctl: a session belongs to an app (Session.app), and
apps keep their sessions, user state and app state apart, against a live server on each
store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_sessions_client import (
    AsyncSessionClient,
    InvalidArgumentError,
    Item,
    NotFoundError,
    SessionClient,
    SessionStatus,
)

SESSIONCTL = str(Path(sys.executable).parent / "sessionctl")


@pytest.fixture
def client(live_server: str) -> Iterator[SessionClient]:
    with SessionClient(live_server) as made:
        yield made


def sessionctl(
    address: str, *args: str, app: str | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Runs sessionctl against ``address``, with SESSIONS_APP set to ``app`` (unset for None)."""
    env = {**os.environ, "COLUMNS": "80", "SESSIONS_ADDRESS": address}
    env.pop("SESSIONS_TOKEN", None)
    env.pop("SESSIONS_APP", None)
    if app is not None:
        env["SESSIONS_APP"] = app
    return subprocess.run(
        [SESSIONCTL, *args], input=stdin, capture_output=True, text=True, env=env, timeout=30
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


# The client


def test_a_session_belongs_to_the_app_it_was_created_in(
    client: SessionClient, user_id: str
) -> None:
    session = client.create_session(user_id=user_id, agent_id="echo", app="shop")
    default = client.create_session(user_id=user_id, agent_id="echo")

    loaded = client.load_session(session.session_id, user_id=user_id, app="shop")

    assert (session.app, session.info.app, loaded.app) == ("shop", "shop", "shop")
    assert default.app == ""
    assert "app='shop'" in repr(session)


def test_the_same_session_id_under_two_apps_is_two_sessions(
    client: SessionClient, user_id: str
) -> None:
    shop = client.create_session(
        user_id=user_id, agent_id="echo", session_id="s-1", app="shop", state={"k": "shop"}
    )
    support = client.create_session(
        user_id=user_id, agent_id="echo", session_id="s-1", app="support", state={"k": "support"}
    )
    default = client.create_session(
        user_id=user_id, agent_id="echo", session_id="s-1", state={"k": "default"}
    )

    shop.run("Hi from the shop")

    loaded = {
        app: client.load_session("s-1", user_id=user_id, app=app) for app in ("shop", "support", "")
    }
    assert {app: s.state for app, s in loaded.items()} == {
        "shop": {"k": "shop"},
        "support": {"k": "support"},
        "": {"k": "default"},
    }
    assert {app: s.info.turn_count for app, s in loaded.items()} == {
        "shop": 1,
        "support": 0,
        "": 0,
    }
    assert (support.app, default.app) == ("support", "")


def test_a_session_is_not_found_under_another_app(client: SessionClient, user_id: str) -> None:
    session = client.create_session(
        user_id=user_id, agent_id="sdk", external_agent=True, app="shop"
    )
    session.append_items([Item.message("user", "hello")])

    for other in ("", "support"):
        with pytest.raises(NotFoundError):
            client.load_session(session.session_id, user_id=user_id, app=other)
    assert [i.payload["content"] for i in session.items()] == ["hello"]


def test_list_sessions_lists_only_the_apps_sessions(client: SessionClient, user_id: str) -> None:
    shop = {
        client.create_session(user_id=user_id, agent_id="echo", app="shop").session_id
        for _ in range(3)
    }
    support = client.create_session(user_id=user_id, agent_id="echo", app="support")
    default = client.create_session(user_id=user_id, agent_id="echo")

    listed_shop = list(client.list_sessions(user_id=user_id, app="shop", page_size=2))
    listed_support = list(client.list_sessions(user_id=user_id, app="support"))
    listed_default = list(client.list_sessions(user_id=user_id))

    assert {s.session_id for s in listed_shop} == shop
    assert {s.app for s in listed_shop} == {"shop"}
    assert [s.session_id for s in listed_support] == [support.session_id]
    assert [s.session_id for s in listed_default] == [default.session_id]


def test_load_or_create_session_resumes_and_creates_in_the_app(
    client: SessionClient, user_id: str
) -> None:
    client.create_session(user_id=user_id, agent_id="echo", session_id="s-1")

    made = client.load_or_create_session(
        user_id=user_id, agent_id="echo", session_id="s-1", app="shop"
    )
    made.run("Hi")
    again = client.load_or_create_session(
        user_id=user_id, agent_id="echo", session_id="s-1", app="shop"
    )

    assert (made.app, again.app) == ("shop", "shop")
    assert again.info.turn_count == 1
    assert client.load_session("s-1", user_id=user_id).info.turn_count == 0


def test_runs_and_turns_go_to_the_sessions_app(client: SessionClient, user_id: str) -> None:
    default = client.create_session(user_id=user_id, agent_id="echo", session_id="s-1")
    session = client.create_session(user_id=user_id, agent_id="echo", session_id="s-1", app="shop")

    first = session.run("Hi")
    streamed = "".join(session.stream("Bye"))

    assert first == "Echo (turn 1): Hi"
    assert streamed == 'Echo (turn 2): Bye (previous: "Hi")'
    assert [t.input for t in session.turns()] == ["Hi", "Bye"]
    assert session.info.turn_count == 2
    assert list(default.turns()) == []
    assert default.refresh().turn_count == 0


def test_item_calls_go_to_the_sessions_app(client: SessionClient, user_id: str) -> None:
    default = client.create_session(
        user_id=user_id, agent_id="sdk", session_id="s-1", external_agent=True
    )
    session = client.create_session(
        user_id=user_id, agent_id="sdk", session_id="s-1", external_agent=True, app="shop"
    )

    written = session.append_items(
        [Item.message("user", "one"), Item.message("assistant", "two")], state={"k": "v"}
    )
    session.append_items([Item.message("user", "three")])
    popped = session.pop_item()
    replaced = session.replace_items(0, [Item.message("assistant", "summary")])
    after_replace = [i.payload["content"] for i in session.items()]
    last = session.last_items(5)
    cleared = session.clear_items()

    assert [i.sequence for i in written] == [1, 2]
    assert popped is not None and popped.payload["content"] == "three"
    assert after_replace == ["summary"]
    assert [i.sequence for i in last] == [i.sequence for i in replaced] == [4]
    assert (cleared.app, cleared.state, cleared.last_item_sequence) == ("shop", {"k": "v"}, 4)
    assert list(session.items()) == []
    assert list(default.items()) == []
    assert (default.refresh().last_item_sequence, default.state) == (0, {})


def test_updates_end_and_delete_go_to_the_sessions_app(client: SessionClient, user_id: str) -> None:
    default = client.create_session(
        user_id=user_id, agent_id="echo", session_id="s-1", state={"k": "default"}
    )
    session = client.create_session(
        user_id=user_id, agent_id="echo", session_id="s-1", app="shop", state={"k": "shop"}
    )

    session.update_state({"more": 1})
    session.update(max_turns=7)
    ended = session.end()

    assert ended.status == SessionStatus.ENDED
    assert (ended.state, ended.max_turns) == ({"k": "shop", "more": 1}, 7)
    untouched = default.refresh()
    assert (untouched.status, untouched.state, untouched.max_turns) == (
        SessionStatus.ACTIVE,
        {"k": "default"},
        default.info.max_turns,
    )
    session.delete()
    with pytest.raises(NotFoundError):
        client.load_session("s-1", user_id=user_id, app="shop")
    assert client.load_session("s-1", user_id=user_id).state == {"k": "default"}


def test_compress_goes_to_the_sessions_app(client: SessionClient, user_id: str) -> None:
    default = client.create_session(user_id=user_id, agent_id="echo", session_id="s-1")
    default.run("default turn")
    session = client.create_session(user_id=user_id, agent_id="echo", session_id="s-1", app="shop")
    for text in ("one", "two", "three"):
        session.run(text)

    result = session.compress(keep_last=1)

    assert (result.folded_turns, result.info.app) == (2, "shop")
    assert [t.input for t in session.turns()] == ["three"]
    assert default.refresh().folded_turns == 0
    assert [t.input for t in default.turns()] == ["default turn"]


def test_user_and_app_state_are_kept_apart_by_app(client: SessionClient, user_id: str) -> None:
    # App state is shared by every user of the app: apps of this test's own.
    shop, support = f"shop-{user_id}", f"support-{user_id}"
    client.create_session(
        user_id=user_id,
        agent_id="echo",
        app=shop,
        state={"user:theme": "dark", "app:banner": "sale"},
    )

    same_app = client.create_session(user_id=user_id, agent_id="echo", app=shop)
    other_app = client.create_session(user_id=user_id, agent_id="echo", app=support)
    default = client.create_session(user_id=user_id, agent_id="echo")

    assert same_app.state == {"user:theme": "dark", "app:banner": "sale"}
    assert other_app.state == {}
    assert default.state == {}


def test_an_export_carries_the_app_and_imports_back_into_it(
    client: SessionClient, user_id: str
) -> None:
    original = client.create_session(
        user_id=user_id, agent_id="echo", session_id="s-1", app="shop", state={"k": "v"}
    )
    original.run("Hi")
    record = json.loads(json.dumps(original.export()))
    original.delete()

    restored = client.import_session(record)

    assert record["app"] == "shop"
    assert restored.app == "shop"
    loaded = client.load_session("s-1", user_id=user_id, app="shop")
    assert (loaded.state, [t.input for t in loaded.turns()]) == ({"k": "v"}, ["Hi"])
    with pytest.raises(NotFoundError):
        client.load_session("s-1", user_id=user_id)


def test_import_with_an_app_moves_the_session_to_that_app(
    client: SessionClient, user_id: str
) -> None:
    original = client.create_session(user_id=user_id, agent_id="echo", session_id="s-1", app="shop")
    original.run("Hi")
    record = original.export()

    moved = client.import_session(record, app="support")
    to_default = client.import_session(record, app="")

    assert (moved.app, to_default.app) == ("support", "")
    assert [t.input for t in moved.turns()] == ["Hi"]
    assert [t.input for t in to_default.turns()] == ["Hi"]
    assert client.load_session("s-1", user_id=user_id, app="shop").info.turn_count == 1


def test_a_record_without_an_app_imports_into_the_default_app(
    client: SessionClient, user_id: str
) -> None:
    original = client.create_session(user_id=user_id, agent_id="echo", session_id="s-1")
    record = original.export()
    original.delete()
    del record["app"]  # as written before apps existed

    restored = client.import_session(record)

    assert restored.app == ""
    assert client.load_session("s-1", user_id=user_id).session_id == "s-1"


async def test_the_async_client_addresses_the_sessions_app(live_server: str, user_id: str) -> None:
    async with AsyncSessionClient(live_server) as client:
        await client.create_session(user_id=user_id, agent_id="echo", session_id="s-1")
        session = await client.create_session(
            user_id=user_id, agent_id="echo", session_id="s-1", app="shop"
        )

        reply = await session.run("Hi")
        listed = [s.session_id async for s in client.list_sessions(user_id=user_id, app="shop")]
        default = await client.load_session("s-1", user_id=user_id)

    assert (reply, session.app, listed) == ("Echo (turn 1): Hi", "shop", ["s-1"])
    assert (default.app, default.info.turn_count) == ("", 0)


def test_an_invalid_app_name_is_invalid_argument(client: SessionClient, user_id: str) -> None:
    for name in ("my app", "a" * 64, "shop/eu"):
        with pytest.raises(InvalidArgumentError) as raised:
            client.create_session(user_id=user_id, agent_id="echo", app=name)
        assert raised.value.field == "app"


# sessionctl


def test_sessionctl_app_creates_and_lists_in_that_app(live_server: str, user_id: str) -> None:
    made = sessionctl(
        live_server, "--app", "shop", "create", "--user", user_id, "--agent", "echo", "--json"
    )
    other = sessionctl(live_server, "create", "--user", user_id, "--agent", "echo", "--json")

    in_shop = sessionctl(live_server, "list", "--user", user_id, "--app", "shop", "--json")
    in_default = sessionctl(live_server, "list", "--user", user_id, "--json")

    assert made.returncode == 0, made.stderr
    session = json.loads(made.stdout)
    assert session["app"] == "shop"
    assert [s["session_id"] for s in json_lines(in_shop.stdout)] == [session["session_id"]]
    assert [s["session_id"] for s in json_lines(in_default.stdout)] == [
        json.loads(other.stdout)["session_id"]
    ]


def test_sessionctl_commands_on_a_session_address_its_app(live_server: str, user_id: str) -> None:
    create = sessionctl(
        live_server,
        "create", "--user", user_id, "--agent", "echo", "--session-id", "s-1", "--app", "shop",
    )  # fmt: skip
    assert create.returncode == 0, create.stderr

    run = sessionctl(live_server, "run", "--user", user_id, "s-1", "Hi", "--app", "shop")
    state = sessionctl(
        live_server, "--app", "shop", "state", "set", "--user", user_id, "s-1", "k=1"
    )
    turns = sessionctl(live_server, "--app", "shop", "turns", "--user", user_id, "s-1", "--json")
    shown = sessionctl(live_server, "get", "--user", user_id, "s-1")
    in_default = sessionctl(live_server, "get", "--user", user_id, "s-1", "--json")
    end = sessionctl(live_server, "end", "--user", user_id, "s-1", "--app", "shop", "--json")

    assert (run.returncode, run.stdout) == (0, "Echo (turn 1): Hi\n")
    assert state.returncode == 0, state.stderr
    assert [t["input"] for t in json_lines(turns.stdout)] == ["Hi"]
    assert shown.returncode == 3  # not in the default app
    assert in_default.returncode == 3
    assert json.loads(in_default.stderr)["error"]["code"] == "NOT_FOUND"
    ended = json.loads(end.stdout)
    assert (ended["app"], ended["status"], ended["state"]) == ("shop", "ENDED", {"k": 1})


def test_sessionctl_takes_the_app_from_sessions_app(live_server: str, user_id: str) -> None:
    made = sessionctl(
        live_server, "create", "--user", user_id, "--agent", "echo", "--json", app="shop"
    )

    from_environment = sessionctl(live_server, "list", "--user", user_id, "--json", app="shop")
    overridden = sessionctl(
        live_server, "list", "--user", user_id, "--app", "", "--json", app="shop"
    )
    shown = sessionctl(
        live_server, "get", "--user", user_id, json.loads(made.stdout)["session_id"], app="shop"
    )

    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["app"] == "shop"
    assert len(json_lines(from_environment.stdout)) == 1
    assert json_lines(overridden.stdout) == []  # --app "" is the default app
    assert shown.returncode == 0, shown.stderr
    assert "shop" in shown.stdout


def test_sessionctl_export_and_import_keep_the_app(
    live_server: str, user_id: str, tmp_path: Path
) -> None:
    for session_id in ("s-1", "s-2"):
        sessionctl(
            live_server,
            "--app", "shop", "create", "--user", user_id, "--agent", "echo",
            "--session-id", session_id,
        )  # fmt: skip
    exported = tmp_path / "sessions.jsonl"
    new_user = f"{user_id}-restored"

    export = sessionctl(
        live_server, "--app", "shop", "export", "--user", user_id, "--output", str(exported)
    )
    imported = sessionctl(live_server, "import", str(exported), "--user", new_user, "--json")
    moved = sessionctl(
        live_server, "--app", "support", "import", str(exported), "--user", new_user, "--json"
    )

    assert export.returncode == 0, export.stderr
    assert {r["app"] for r in json_lines(exported.read_text())} == {"shop"}
    assert json.loads(imported.stdout) == {"imported": 2, "already_existing": 0, "failed": 0}
    assert json.loads(moved.stdout) == {"imported": 2, "already_existing": 0, "failed": 0}
    for app in ("shop", "support"):
        listed = sessionctl(live_server, "--app", app, "list", "--user", new_user, "--json")
        assert {s["session_id"] for s in json_lines(listed.stdout)} == {"s-1", "s-2"}
    in_default = sessionctl(live_server, "list", "--user", new_user, "--json")
    assert json_lines(in_default.stdout) == []


def test_sessionctl_refuses_an_invalid_app_name(live_server: str, user_id: str) -> None:
    from_option = sessionctl(live_server, "--app", "my app", "list", "--user", user_id)
    from_environment = sessionctl(live_server, "list", "--user", user_id, "--json", app="a/b")

    assert from_option.returncode == 2
    assert "invalid app 'my app'" in from_option.stderr
    assert from_environment.returncode == 2
    error = json.loads(from_environment.stderr)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["message"].startswith("$SESSIONS_APP: invalid app 'a/b'")


def test_update_state_removes_the_users_and_the_apps_keys_too(
    client: SessionClient, user_id: str
) -> None:
    app = f"state-{user_id}"  # app state is shared by every test's users: an app of its own
    session = client.create_session(
        user_id=user_id, agent_id="echo", app=app, state={"user:a": 1, "app:b": 2, "c": 3}
    )

    state = session.update_state({"d": 4}, remove=("user:a", "app:b"))

    assert state == {"c": 3, "d": 4}
    other = client.create_session(user_id=user_id, agent_id="echo", app=app)
    assert other.state == {}
