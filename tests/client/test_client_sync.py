"""SessionClient, the blocking client, against a live server on each store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from agent_sessions_client import (
    AbortedError,
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    Item,
    ItemType,
    NotFoundError,
    Session,
    SessionClient,
    SessionStatus,
    Turn,
    TurnStatus,
    UnavailableError,
)
from agent_sessions_client._channel import RETRIED_METHODS
from launchers.redis_server import free_port


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
    assert raised.value.metadata["session_id"] == created.session_id


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
    assert raised.value.reason == "MAX_TURNS_REACHED"
    assert raised.value.metadata["max_turns"] == "1"


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
    assert raised.value.message.startswith("input: ")  # the server's own words, as sent


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
    archiving_server: str, user_id: str
) -> None:
    # On a server that does not compress long histories on its own (by default it
    # would fold this one long before it reached 4 MB).
    with SessionClient(archiving_server) as client:
        session = client.create_session(user_id=user_id, agent_id="a")
        # About 60 KB a turn with its echo, and as much again in its items (the user's
        # message and the reply): 80 turns make a 14 MB import, within the server's 16 MiB.
        for i in range(80):
            session.run(f"{i} " + "x" * 30_000)

        record = session.export()
        restored = client.import_session(record, user_id=f"{user_id}-restored")

    assert len(json.dumps(record)) > 4 * 1024 * 1024
    assert (restored.info.total_turns, restored.info.folded_turns) == (80, 0)
    assert restored.info.history_bytes == session.info.history_bytes > 4 * 1024 * 1024


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


def run_turns(session: Session, count: int) -> None:
    for i in range(1, count + 1):
        session.run(f"Question {i}? Some more detail.")


def test_compress_folds_all_but_the_last_turns_into_the_summary(
    client: SessionClient, user_id: str
) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")
    run_turns(session, 5)
    before = session.info

    result = session.compress(keep_last=2)

    assert (result.folded_turns, result.summarizer) == (3, "extractive")
    assert session.info == result.info
    info = result.info
    assert (info.folded_turns, info.turn_count, info.total_turns) == (3, 5, 5)
    assert 0 < info.history_bytes < before.history_bytes
    assert info.summary.splitlines() == [
        f"Turn {i}: user: Question {i}? | agent: Echo (turn {i}): Question {i}?" for i in (1, 2, 3)
    ]
    assert [t.index for t in session.turns()] == [4, 5]
    assert [t.index for t in session.turns(newest_first=True)] == [5, 4]
    assert session.run("And now?").startswith("Echo (turn 6): And now?")
    assert session.refresh().folded_turns == 3


def test_compress_leaves_a_short_history_alone_and_zero_folds_everything(
    client: SessionClient, user_id: str
) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")
    run_turns(session, 3)

    untouched = session.compress()  # the server keeps 20 turns by default
    everything = session.compress(keep_last=0)

    assert (untouched.folded_turns, untouched.summarizer) == (0, "")
    assert untouched.info.folded_turns == 0
    assert (everything.folded_turns, everything.info.folded_turns) == (3, 3)
    assert everything.info.history_bytes == 0
    assert list(session.turns()) == []
    assert "Turn 3: user: Question 3?" in everything.info.summary


def test_compress_of_an_unknown_session_is_not_found(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="a")
    session.delete()

    with pytest.raises(NotFoundError):
        session.compress()


def test_compress_is_not_retried_by_the_channel() -> None:
    assert "CompressSession" not in RETRIED_METHODS


def test_turns_include_archived_returns_the_folded_turns_too(
    archiving_server: str, user_id: str
) -> None:
    with SessionClient(archiving_server) as client:
        session = client.create_session(user_id=user_id, agent_id="my-agent")
        run_turns(session, 4)
        session.compress(keep_last=1)

        history = [t.index for t in session.turns()]
        everything = list(session.turns(include_archived=True, page_size=3))

    assert history == [4]
    assert [t.index for t in everything] == [1, 2, 3, 4]
    assert everything[0].input == "Question 1? Some more detail."


def test_a_compressed_session_exports_and_imports_with_its_summary(
    client: SessionClient, user_id: str
) -> None:
    original = client.create_session(user_id=user_id, agent_id="my-agent")
    run_turns(original, 5)
    original.compress(keep_last=2)

    record = json.loads(json.dumps(original.export()))
    restored = client.import_session(record, user_id=f"{user_id}-restored")

    assert (record["folded_turns"], record["turn_count"]) == (3, 5)
    assert [t["index"] for t in record["turns"]] == [4, 5]
    info = restored.info
    assert (info.folded_turns, info.turn_count, info.total_turns) == (3, 5, 5)
    assert info.summary == original.info.summary
    assert info.history_bytes == original.info.history_bytes
    assert [(t.index, t.input, t.output) for t in restored.turns()] == [
        (t.index, t.input, t.output) for t in original.turns()
    ]
    assert restored.run("Still there?").startswith("Echo (turn 6): Still there?")


def test_a_record_from_before_compression_still_imports(
    client: SessionClient, user_id: str
) -> None:
    original = client.create_session(user_id=user_id, agent_id="my-agent")
    run_turns(original, 2)
    record = original.export()
    del record["folded_turns"], record["turn_count"]

    restored = client.import_session(record, user_id=f"{user_id}-restored")

    assert (restored.info.folded_turns, restored.info.turn_count) == (0, 2)
    assert [t.index for t in restored.turns()] == [1, 2]


def after_reading_the_turns(
    monkeypatch: pytest.MonkeyPatch, session: Session, meanwhile: Callable[[int], None]
) -> list[int]:
    """Makes ``session.turns`` call ``meanwhile(n)`` after the n-th whole read (n from 1),
    as if another client acted between an export's reads; returns the list of reads."""
    read = session.turns
    reads: list[int] = []

    def turns(**options: Any) -> Iterator[Turn]:
        history = list(read(**options))
        reads.append(len(history))
        meanwhile(len(reads))
        return iter(history)

    monkeypatch.setattr(session, "turns", turns)
    return reads


def test_an_export_stays_consistent_when_the_session_is_compressed_meanwhile(
    client: SessionClient, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")
    run_turns(session, 5)
    other = client.load_session(session.session_id, user_id=user_id)

    def compress_once(reads: int) -> None:
        if reads == 1:
            other.compress(keep_last=2)

    reads = after_reading_the_turns(monkeypatch, session, compress_once)

    record = session.export()
    restored = client.import_session(record, user_id=f"{user_id}-restored")

    # The turns the compression folded are left out: the summary stands for them.
    assert reads == [5]
    assert record["folded_turns"] == 3
    assert "Turn 3: user: Question 3?" in record["summary"]
    assert [t["index"] for t in record["turns"]] == [4, 5]
    assert (restored.info.folded_turns, restored.info.turn_count) == (3, 5)


def test_an_export_reads_again_when_a_turn_ran_meanwhile(
    client: SessionClient, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")
    run_turns(session, 2)
    other = client.load_session(session.session_id, user_id=user_id)

    def run_once(reads: int) -> None:
        if reads == 1:
            other.run("Late question.")

    reads = after_reading_the_turns(monkeypatch, session, run_once)

    record = session.export()

    assert reads == [2, 3]
    assert [t["input"] for t in record["turns"]][-1] == "Late question."
    assert record["turn_count"] == 3


def test_an_export_of_a_session_that_keeps_changing_is_aborted(
    client: SessionClient, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")
    other = client.load_session(session.session_id, user_id=user_id)

    def run_every_time(reads: int) -> None:
        other.run(f"turn {reads}")

    reads = after_reading_the_turns(monkeypatch, session, run_every_time)

    with pytest.raises(AbortedError) as raised:
        session.export()

    assert reads == [0, 1, 2]
    assert raised.value.reason == "EXPORT_INCONSISTENT"


# Items: the history of an agent that runs elsewhere (docs/items.md).

# A payload as a framework may write it: its key order, spacing, escapes and non-ASCII
# text must come back byte for byte.
ODD_PAYLOAD = '{"z": 1,   "a": [ 1.50, "\\u00e9", "晴"],"role":"user" }'


def a_turn(city: str = "Shanghai") -> list[Item]:
    return [
        Item.message("user", f"How's the weather in {city}?", item_id=f"msg-{city}"),
        Item.tool_call("get_weather", {"city": city}, call_id=f"call-{city}"),
        Item.tool_result(f"call-{city}", "sunny, 22°C", name="get_weather"),
        Item.message("assistant", f"{city} is sunny today, 22°C"),
    ]


@pytest.fixture
def external(client: SessionClient, user_id: str) -> Session:
    return client.create_session(user_id=user_id, agent_id="my-sdk-agent", external_agent=True)


def test_the_item_helpers_write_the_payloads_the_server_reads() -> None:
    message, call, result, _ = a_turn()

    assert (message.type, message.role, message.item_id) == (
        ItemType.MESSAGE,
        "user",
        "msg-Shanghai",
    )
    assert message.payload == {"role": "user", "content": "How's the weather in Shanghai?"}
    assert (call.type, call.name, call.call_id, call.role) == (
        ItemType.TOOL_CALL,
        "get_weather",
        "call-Shanghai",
        "assistant",
    )
    assert json.loads(call.payload["arguments"]) == {"city": "Shanghai"}
    assert result.payload == {"call_id": "call-Shanghai", "output": "sunny, 22°C"}
    assert "°C" in result.payload_json  # non-ASCII kept as is
    assert (message.sequence, message.create_time) == (0, None)


def test_an_external_session_refuses_runs(external: Session) -> None:
    assert (external.info.external_agent, external.info.last_item_sequence) == (True, 0)
    with pytest.raises(FailedPreconditionError) as raised:
        external.run("hi")

    assert raised.value.reason == "EXTERNAL_AGENT"


def test_append_items_writes_one_turn_and_lists_back_the_same_items(
    external: Session,
) -> None:
    written = external.append_items(a_turn(), state={"city": "Shanghai"})
    listed = list(external.items())

    assert [i.sequence for i in written] == [1, 2, 3, 4]
    assert {i.turn_index for i in written} == {1}
    assert all(i.create_time is not None for i in written)
    assert listed == written
    assert [(i.type, i.role, i.name, i.call_id) for i in listed] == [
        (ItemType.MESSAGE, "user", "", ""),
        (ItemType.TOOL_CALL, "assistant", "get_weather", "call-Shanghai"),
        (ItemType.TOOL_RESULT, "tool", "get_weather", "call-Shanghai"),
        (ItemType.MESSAGE, "assistant", "", ""),
    ]
    info = external.info
    assert (info.last_item_sequence, info.turn_count, info.state) == (4, 1, {"city": "Shanghai"})
    turn = next(external.turns())
    assert (turn.input, turn.output) == (
        "How's the weather in Shanghai?",
        "Shanghai is sunny today, 22°C",
    )


def test_a_payload_comes_back_byte_for_byte(external: Session) -> None:
    odd = Item(ItemType.OTHER, ODD_PAYLOAD, type_name="my_framework_event", role="user")

    (written,) = external.append_items([odd])
    (listed,) = external.last_items(1)

    assert written.payload_json == listed.payload_json == ODD_PAYLOAD
    assert (listed.type, listed.type_name) == (ItemType.OTHER, "my_framework_event")


def test_items_pages_either_way_and_after_a_sequence(external: Session) -> None:
    external.append_items(a_turn("Shanghai"))
    external.append_items(a_turn("Beijing"))

    oldest_first = [i.sequence for i in external.items(page_size=3)]
    newest_first = [i.sequence for i in external.items(page_size=3, newest_first=True)]
    after = [i.sequence for i in external.items(after_sequence=5, page_size=2)]

    assert oldest_first == list(range(1, 9))
    assert newest_first == list(range(8, 0, -1))
    assert after == [6, 7, 8]
    assert [i.turn_index for i in external.items()] == [1] * 4 + [2] * 4


def test_last_items_are_the_newest_oldest_first(external: Session) -> None:
    external.append_items(a_turn("Shanghai"))
    external.append_items(a_turn("Beijing"))

    assert [i.sequence for i in external.last_items(3)] == [6, 7, 8]
    assert [i.sequence for i in external.last_items(100)] == list(range(1, 9))
    assert external.last_items(0) == []


def test_pop_item_removes_the_newest_and_none_when_empty(external: Session) -> None:
    external.append_items(a_turn()[:2])

    popped = external.pop_item()
    second = external.pop_item()
    nothing = external.pop_item()

    assert popped is not None and second is not None
    assert (popped.sequence, popped.type, second.sequence) == (2, ItemType.TOOL_CALL, 1)
    assert nothing is None
    assert list(external.items()) == []
    assert external.info.last_item_sequence == 2  # numbers are never reused
    assert [i.sequence for i in external.append_items(a_turn()[:1])] == [3]


def test_clear_items_empties_the_history_and_numbering_goes_on(external: Session) -> None:
    external.append_items(a_turn())

    info = external.clear_items()
    kept = external.info
    cleared = (list(external.items()), list(external.turns()))
    (next_item,) = external.append_items([Item.message("user", "again")])

    assert cleared == ([], [])
    assert (info, info.last_item_sequence) == (kept, 4)
    assert (next_item.sequence, next_item.turn_index) == (5, 2)
    assert [i.sequence for i in external.items()] == [5]


def test_replace_items_swaps_the_tail_for_a_summary(external: Session) -> None:
    external.append_items(a_turn())
    summary = Item.message("assistant", "(summary) Shanghai: sunny")

    (new,) = external.replace_items(1, [summary], expected_last_sequence=4)
    history = list(external.items())

    assert (new.sequence, new.payload_json) == (5, summary.payload_json)
    assert [i.sequence for i in history] == [1, 5]
    assert external.info.last_item_sequence == 5


def test_an_append_retried_with_its_request_id_returns_the_first_items(
    external: Session,
) -> None:
    first = external.append_items(a_turn(), request_id="turn-1")
    again = external.append_items(a_turn(), request_id="turn-1")

    assert again == first
    assert [i.sequence for i in external.items()] == [1, 2, 3, 4]
    assert external.info.turn_count == 1


def test_a_stale_expected_last_sequence_is_aborted_and_writes_nothing(
    external: Session,
) -> None:
    external.append_items([Item.message("user", "one")], expected_last_sequence=0)

    with pytest.raises(AbortedError) as raised:
        external.append_items([Item.message("user", "two")], expected_last_sequence=0)
    with pytest.raises(AbortedError) as replaced:
        external.replace_items(0, [], expected_last_sequence=7)

    assert raised.value.reason == replaced.value.reason == "SEQUENCE_MISMATCH"
    assert [i.payload["content"] for i in external.items()] == ["one"]
    assert external.append_items([Item.message("user", "two")], expected_last_sequence=1)


def test_if_unchanged_appends_only_to_the_session_as_last_seen(
    client: SessionClient, external: Session
) -> None:
    stale = client.load_session(external.session_id, user_id=external.user_id)
    external.append_items([Item.message("user", "one")], if_unchanged=True)

    with pytest.raises(AbortedError) as raised:
        stale.append_items([Item.message("user", "two")], if_unchanged=True)

    assert raised.value.reason == "ETAG_MISMATCH"
    assert external.append_items([Item.message("user", "two")], if_unchanged=True)


def test_append_items_sets_and_removes_state_keys(client: SessionClient, user_id: str) -> None:
    session = client.create_session(
        user_id=user_id, agent_id="a", external_agent=True, state={"a": 1, "b": 2}
    )

    session.append_items([Item.message("user", "hi")], state={"c": 3}, remove=["a"])

    assert session.state == {"b": 2, "c": 3}


def test_an_item_id_the_session_holds_is_not_stored_again(external: Session) -> None:
    (first,) = external.append_items([Item.message("user", "hi", item_id="msg-1")])
    again, new = external.append_items(
        [Item.message("user", "hi", item_id="msg-1"), Item.message("assistant", "hello")]
    )

    assert again == first
    assert new.sequence == 2


def test_an_invalid_item_names_its_field(external: Session) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        external.append_items([Item.message("user", "ok"), Item(ItemType.MESSAGE, "{not json")])

    assert raised.value.field == "items[1].payload_json"


def test_pop_and_clear_are_not_retried_by_the_channel() -> None:
    assert {"PopItem", "ClearItems"}.isdisjoint(RETRIED_METHODS)
    assert {"ListItems", "AppendItems", "ReplaceItems"} <= set(RETRIED_METHODS)


def test_a_run_records_its_turn_as_items(client: SessionClient, user_id: str) -> None:
    session = client.create_session(user_id=user_id, agent_id="my-agent")

    reply = session.run("Hello")
    items = session.last_items(10)

    assert [(i.type, i.role, i.payload["content"]) for i in items] == [
        (ItemType.MESSAGE, "user", "Hello"),
        (ItemType.MESSAGE, "assistant", reply),
    ]
    assert session.info.last_item_sequence == 2


def test_an_external_session_exports_and_imports_with_its_items(
    client: SessionClient, user_id: str
) -> None:
    original = client.create_session(user_id=user_id, agent_id="my-sdk", external_agent=True)
    original.append_items(
        [
            Item.message("user", "How's the weather in Shanghai?", item_id="m-1"),
            Item.tool_call("get_weather", {"city": "Shanghai"}, call_id="call-1"),
            Item.tool_result("call-1", "sunny", name="get_weather"),
        ]
    )
    original.pop_item()

    record = json.loads(json.dumps(original.export()))
    restored = client.import_session(record, user_id=f"{user_id}-restored")

    assert restored.info.external_agent
    assert [(i.sequence, i.payload_json) for i in restored.items()] == [
        (i.sequence, i.payload_json) for i in original.items()
    ]
    later = restored.append_items([Item.message("user", "next")])
    assert [i.sequence for i in later] == [4]  # 3 was popped: never used again
