"""Summarizers: what folds old turns into a session's summary when it is compressed.

An agent whose backend can summarize (the openai and grpc kinds) is its own
summarizer; every other session gets the built-in extractive one, which needs no
model and always gives the same summary for the same turns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent_sessions.model import Turn, TurnStatus


@dataclass(frozen=True, slots=True)
class SummaryRequest:
    """Fold ``turns`` (oldest first) into ``summary``, the summary of the turns before them.

    The answer must fit in ``max_bytes`` UTF-8 bytes; a longer one is cut.
    """

    session_id: str
    user_id: str
    agent_id: str
    summary: str
    turns: Sequence[Turn]
    max_bytes: int


@runtime_checkable
class Summarizer(Protocol):
    """Writes the summary that stands for folded turns.

    Raises :class:`~agent_sessions.agents.AgentError` (or a subclass) when it cannot;
    the session then falls back to the extractive summarizer.
    """

    async def summarize(self, request: SummaryRequest) -> str: ...


_OMITTED = re.compile(r"\((\d+) earlier turns? omitted\)")
# Latin sentence ends take a space after them; CJK full stops and marks do not.
_SENTENCE_END = re.compile("(?<=[.!?])\\s|(?<=[\u3002\uff01\uff1f])")
_MAX_QUOTE_CHARS = 160


class ExtractiveSummarizer:
    """One line per folded turn: the user's first sentence and the reply's.

    ``Turn 3: user: What about Beijing? | agent: Beijing is cloudy, 18°C.`` Lines of
    earlier summaries are kept; when the summary outgrows its budget, the oldest lines
    give way to a count, ``(12 earlier turns omitted)``. Deterministic: the same
    summary and turns always give the same result.
    """

    async def summarize(self, request: SummaryRequest) -> str:
        return self.fold(request.summary, request.turns, request.max_bytes)

    def fold(self, summary: str, turns: Sequence[Turn], max_bytes: int) -> str:
        lines = [line for line in summary.splitlines() if line.strip()]
        omitted = 0
        if lines and (match := _OMITTED.fullmatch(lines[0])):
            omitted = int(match[1])
            lines = lines[1:]
        lines += (_line(turn) for turn in turns)
        sizes = [len(line.encode()) + 1 for line in lines]
        total = sum(sizes)
        dropped = 0
        # Room for the count line, whatever it grows to.
        while lines[dropped:] and total + 40 > max_bytes and dropped < len(lines) - 1:
            total -= sizes[dropped]
            dropped += 1
        omitted += dropped
        kept = lines[dropped:]
        if omitted:
            noun = "turn" if omitted == 1 else "turns"
            kept.insert(0, f"({omitted} earlier {noun} omitted)")
        return cut("\n".join(kept), max_bytes)


def _line(turn: Turn) -> str:
    line = f"Turn {turn.index}: user: {_first_sentence(turn.input)}"
    if turn.status is TurnStatus.COMPLETED:
        return f"{line} | agent: {_first_sentence(turn.output)}"
    return f"{line} ({turn.status.name.lower()})"


def _first_sentence(text: str) -> str:
    flat = " ".join(text.split())
    sentence = _SENTENCE_END.split(flat, maxsplit=1)[0]
    if len(sentence) <= _MAX_QUOTE_CHARS:
        return sentence
    return sentence[:_MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + "…"


def cut(text: str, max_bytes: int) -> str:
    """``text`` shortened to at most ``max_bytes`` UTF-8 bytes, on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode(errors="ignore")
