"""The built-in summarizer: one line per folded turn, within its budget, deterministic."""

from __future__ import annotations

from agent_sessions.agents.summarizer import ExtractiveSummarizer, cut
from agent_sessions.model import Turn, TurnStatus

summarizer = ExtractiveSummarizer()


def turn(index: int, text: str, reply: str = "", status: TurnStatus = TurnStatus.COMPLETED) -> Turn:
    return Turn(index=index, status=status, input=text, create_time_ms=0, output=reply)


def test_each_turn_gives_the_first_sentence_of_the_input_and_of_the_reply() -> None:
    summary = summarizer.fold(
        "",
        [turn(1, "How's the weather in Shanghai? I fly tomorrow.", "Sunny, 25°C. Enjoy!")],
        4096,
    )

    assert summary == "Turn 1: user: How's the weather in Shanghai? | agent: Sunny, 25°C."


def test_a_turn_without_a_reply_says_how_it_ended() -> None:
    summary = summarizer.fold("", [turn(4, "Tell me more", status=TurnStatus.FAILED)], 4096)

    assert summary == "Turn 4: user: Tell me more (failed)"


def test_chinese_sentences_end_at_their_full_stop() -> None:
    summary = summarizer.fold("", [turn(1, "上海天气怎么样。明天呢", "晴天。二十五度")], 4096)

    assert summary == "Turn 1: user: 上海天气怎么样。 | agent: 晴天。"


def test_a_long_sentence_is_cut_at_a_word_with_an_ellipsis() -> None:
    summary = summarizer.fold("", [turn(1, "word " * 100)], 4096)

    quoted = summary.removeprefix("Turn 1: user: ").removesuffix(" | agent: ")
    assert quoted.endswith("word…")
    assert len(quoted) <= 161


def test_new_lines_follow_the_earlier_summary() -> None:
    earlier = summarizer.fold("", [turn(1, "First.", "One.")], 4096)

    summary = summarizer.fold(earlier, [turn(2, "Second.", "Two.")], 4096)

    assert summary == "Turn 1: user: First. | agent: One.\nTurn 2: user: Second. | agent: Two."


def test_past_its_budget_the_oldest_lines_give_way_to_a_count() -> None:
    turns = [turn(i, f"Question number {i}.", f"Answer number {i}.") for i in range(1, 41)]

    summary = summarizer.fold("", turns, 600)
    again = summarizer.fold(summary, [turn(41, "Last question.", "Last answer.")], 600)

    assert len(summary.encode()) <= 600
    first, *rest = summary.splitlines()
    assert first.endswith("earlier turns omitted)")
    assert rest[-1] == "Turn 40: user: Question number 40. | agent: Answer number 40."
    assert int(first.split()[0][1:]) + len(rest) == 40
    assert again.splitlines()[-1] == "Turn 41: user: Last question. | agent: Last answer."
    assert len(again.encode()) <= 600


def test_the_same_turns_always_give_the_same_summary() -> None:
    turns = [turn(i, f"Q {i}. more", f"A {i}. more") for i in range(1, 30)]

    assert summarizer.fold("x", turns, 500) == summarizer.fold("x", turns, 500)


def test_cut_keeps_whole_characters() -> None:
    assert cut("上海天气", 7) == "上海"
