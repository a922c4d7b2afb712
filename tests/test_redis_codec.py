"""The Redis store's stored turns, as an agent's context reads them: only the completed
ones, each decoded when read."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent_sessions.model import Turn, TurnStatus
from agent_sessions.store.redis import codec


def stored(index: int, status: TurnStatus, text: str, *, compress: int = 0) -> str:
    turn = Turn(index, status, text, 1_000, output=f"reply to {text}", complete_time_ms=2_000)
    element = codec.encode_turn(turn, compress_over_bytes=compress)
    return element if isinstance(element, str) else element.decode("utf-8", "surrogateescape")


def test_the_context_holds_the_completed_turns_in_order_whatever_their_texts_hold() -> None:
    elements = [
        stored(4, TurnStatus.COMPLETED, 'quote ,"s":1, and a backslash \\'),
        stored(5, TurnStatus.FAILED, "failed"),
        codec.open_turn(3_000, "r-1", 'in progress ,"s":2'),
        stored(7, TurnStatus.COMPLETED, "long " * 200, compress=64),
    ]

    history = codec.decode_completed(4, elements)

    assert [turn.index for turn in history] == [4, 7]
    assert history[0].input == 'quote ,"s":1, and a backslash \\'
    assert history[-1].input == "long " * 200
    assert [turn.index for turn in history[-1:]] == [7]


@given(st.text(), st.sampled_from(list(TurnStatus)))
def test_a_turns_status_is_read_without_decoding_it(text: str, status: TurnStatus) -> None:
    element = stored(1, status, text)

    history = codec.decode_completed(1, [element])

    assert len(history) == (1 if status is TurnStatus.COMPLETED else 0)
