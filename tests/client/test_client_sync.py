"""SessionClient, the blocking client, against a live server on each store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from agent_sessions_client import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    SessionClient,
    SessionStatus,
    TurnStatus,
    UnavailableError,
)
from tests.redis_server import free_port


@pytest.fixture
def client(live_server: str) -> Iterator[SessionClient]:
    with SessionClient(live_server) as made:
        yield made


def test_create_session_applies_the_options(client: SessionClient, user_id: str) -> None:
    session = client.create_session(
        user_id=user_id,
        agent_id="my-agent",
        ttl=timedelta(hours=48),
        idle_timeout=timedelta(minutes=10),
        max_turns=100,
        state={"city": "Shanghai"},
        labels={"channel": "web"},
    )

    info = session.info
    assert (info.user_id, info.agent_id, info.status) == (user_id, "my-agent", SessionStatus.ACTIVE)
    assert (info.ttl, info.idle_timeout, info.max_turns) == (
        timedelta(hours=48),
        timedelta(minutes=10),
        100,
    )
    assert session.state == {"city": "Shanghai"}
    assert info.labels == {"channel": "web"}


def test_run_returns_the_reply_and_remembers_the_context(
    client: SessionClient, user_id: str
) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")

    first = session.run("How's the weather in Shanghai?")
    second = session.run("What about Beijing?")

    assert first == "Echo (turn 1): How's the weather in Shanghai?"
    assert second.endswith('(previous: "How\'s the weather in Shanghai?")')
    assert session.info.turn_count == 2


def test_stream_yields_the_reply_as_it_arrives(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")

    chunks = list(session.stream("Hello"))

    assert chunks and "".join(chunks) == "Echo (turn 1): Hello"


def test_a_run_retried_with_its_request_id_is_not_run_twice(
    client: SessionClient, user_id: str
) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")

    first = session.run("pay the invoice", request_id="invoice-42")
    again = session.run("pay the invoice", request_id="invoice-42")

    assert again == first
    assert [t.index for t in session.turns()] == [1]


def test_load_session_resumes_by_id(client: SessionClient, user_id: str) -> None:
    created = client.create_session(user_id=user_id, agent_id="my-agent")
    created.run("remember me")

    resumed = client.load_session(created.session_id, user_id=user_id)

    assert resumed.info.turn_count == 1
    assert resumed.run("still there?").endswith('(previous: "remember me")')


def test_load_session_of_another_user_is_not_found(client: SessionClient, user_id: str) -> None:
    created = client.create_session(user_id=user_id, agent_id="my-agent")

    with pytest.raises(NotFoundError) as raised:
        client.load_session(created.session_id, user_id="someone-else")

    assert raised.value.reason == "SESSION_NOT_FOUND"
    assert "not found" in raised.value.message


def test_load_or_create_creates_the_missing_session_then_resumes_it(
    client: SessionClient, user_id: str
) -> None:
    made = client.load_or_create_session(user_id=user_id, agent_id="my-agent", session_id="chat-1")
    made.run("first visit")

    again = client.load_or_create_session(user_id=user_id, agent_id="my-agent", session_id="chat-1")

    assert again.session_id == "chat-1"
    assert again.info.turn_count == 1


def test_list_sessions_reads_every_page(client: SessionClient, user_id: str) -> None:
    made = {client.create_session(user_id=user_id, agent_id="a").session_id for _ in range(5)}

    listed = {s.session_id for s in client.list_sessions(user_id=user_id, page_size=2)}

    assert listed == made


def test_turns_iterates_the_whole_history_across_pages(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")
    for i in range(5):
        session.run(f"q{i}")

    oldest_first = list(session.turns(page_size=2))
    newest_first = list(session.turns(page_size=2, newest_first=True))

    assert [t.input for t in oldest_first] == ["q0", "q1", "q2", "q3", "q4"]
    assert all(t.status is TurnStatus.COMPLETED for t in oldest_first)
    assert [t.index for t in newest_first] == [5, 4, 3, 2, 1]


def test_update_state_merges_into_the_state(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="a", state={"a": 1, "b": 2})

    state = session.update_state({"c": 3}, remove=("a",))

    assert state == {"b": 2, "c": 3}
    assert session.refresh().state == {"b": 2, "c": 3}


def test_update_state_on_a_stale_snapshot_is_aborted(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="a")
    other_view = client.load_session(session.session_id, user_id=user_id)
    other_view.update_state({"written": "elsewhere"})

    with pytest.raises(AbortedError):
        session.update_state({"mine": True})


def test_update_changes_limits(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="a")

    info = session.update(max_turns=1, ttl=timedelta(hours=1))
    session.run("one")

    assert (info.max_turns, info.ttl) == (1, timedelta(hours=1))
    with pytest.raises(FailedPreconditionError) as raised:
        session.run("two")
    assert "max_turns=1" in raised.value.message


def test_an_ended_session_refuses_runs(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="a")

    info = session.end()

    assert info.status is SessionStatus.ENDED
    with pytest.raises(FailedPreconditionError) as raised:
        session.run("hello?")
    assert raised.value.reason == "SESSION_ENDED"


def test_a_deleted_session_is_gone(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="a")

    session.delete()

    with pytest.raises(NotFoundError):
        session.refresh()


def test_a_taken_session_id_raises_already_exists(client: SessionClient, user_id: str) -> None:
    client.create_session(user_id=user_id, agent_id="a", session_id="taken")

    with pytest.raises(AlreadyExistsError):
        client.create_session(user_id=user_id, agent_id="a", session_id="taken")


def test_invalid_input_raises_with_the_field_and_the_servers_message(
    client: SessionClient, user_id: str
) -> None:
    session = client.create_session(user_id=user_id, agent_id="a")

    with pytest.raises(InvalidArgumentError) as raised:
        session.run("")

    assert raised.value.field == "input"
    assert "input" in raised.value.message


def test_an_unreachable_server_raises_unavailable() -> None:
    with (
        SessionClient(f"127.0.0.1:{free_port()}", default_timeout=5) as nowhere,
        pytest.raises(UnavailableError),
    ):
        nowhere.load_session("any", user_id="u")


def test_the_address_defaults_to_sessions_address(
    live_server: str, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSIONS_ADDRESS", live_server)

    with SessionClient() as client:
        session = client.create_session(user_id=user_id, agent_id="a")

    assert client.address == live_server
    assert session.session_id


def test_an_exported_session_imports_with_its_history(client: SessionClient, user_id: str) -> None:
    original = client.create_session(user_id=user_id, agent_id="my-agent", state={"k": "v"})
    original.run("How's the weather in Shanghai?")
    original.run("What about Beijing?")

    record = json.loads(json.dumps(original.export()))
    restored = client.import_session(record, user_id=f"{user_id}-restored")

    assert restored.session_id == original.session_id
    assert restored.state == {"k": "v"}
    assert [(t.input, t.output) for t in restored.turns()] == [
        (t.input, t.output) for t in original.turns()
    ]
    assert restored.run("And Tokyo?").endswith('(previous: "What about Beijing?")')


def test_importing_over_a_taken_id_raises_already_exists(
    client: SessionClient, user_id: str
) -> None:
    session = client.create_session(user_id=user_id, agent_id="a")

    with pytest.raises(AlreadyExistsError):
        client.import_session(session.export())


def test_a_malformed_record_is_invalid(client: SessionClient) -> None:
    with pytest.raises(InvalidArgumentError):
        client.import_session({"session_id": "s"})


def test_a_history_larger_than_grpcs_default_4_mb_exports_and_imports(
    client: SessionClient, user_id: str
) -> None:
    session = client.create_session(user_id=user_id, agent_id="a")
    for i in range(180):
        session.run(f"{i} " + "x" * 30_000)  # about 60 KB a turn with its echo

    record = session.export()
    restored = client.import_session(record, user_id=f"{user_id}-restored")

    assert len(json.dumps(record)) > 5 * 1024 * 1024
    assert restored.info.total_turns == 180


def test_a_create_retried_with_its_request_id_returns_the_same_session(
    client: SessionClient, user_id: str
) -> None:
    first = client.create_session(
        user_id=user_id, agent_id="a", session_id="chat-1", request_id="create-1"
    )

    again = client.create_session(
        user_id=user_id, agent_id="a", session_id="chat-1", request_id="create-1"
    )

    assert again.info == first.info
