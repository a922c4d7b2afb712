"""Deltas that pile up while one is being sent leave as one message, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from agent_sessions.api.coalesce import coalesced
from agent_sessions.model import Session, SessionStatus, Turn, TurnStatus
from agent_sessions.sessions import RunCompleted, RunDelta, RunEvent, RunStarted

TURN = Turn(1, TurnStatus.COMPLETED, "hi", 0, output="abc")
SESSION = Session("s", "u", "a", SessionStatus.ACTIVE, 0, 0, 0, 1, 1, 0, 1, 1)


async def burst() -> AsyncGenerator[RunEvent, None]:
    yield RunStarted(1, replayed=False)
    for text in "abc":
        yield RunDelta(text)
    yield RunCompleted(TURN, SESSION)


async def test_deltas_produced_at_once_are_sent_as_one() -> None:
    events = [event async for event in coalesced(burst())]

    assert events == [RunStarted(1, False), RunDelta("abc"), RunCompleted(TURN, SESSION)]


async def test_merged_deltas_of_the_log_carry_the_last_ones_sequence_number() -> None:
    async def numbered() -> AsyncGenerator[RunEvent, None]:
        for sequence, text in enumerate("abc", start=2):
            yield RunDelta(text, sequence=sequence)

    events = [event async for event in coalesced(numbered())]

    assert events == [RunDelta("abc", sequence=4)]


async def test_the_started_event_is_handed_over_before_the_agents_first_burst() -> None:
    produced: list[str] = []

    async def run() -> AsyncGenerator[RunEvent, None]:
        yield RunStarted(1, replayed=False)
        for text in "abc":  # an agent that yields without waiting
            produced.append(text)
            yield RunDelta(text)

    stream = coalesced(run())
    first = await anext(stream)
    produced_when_handed_over = list(produced)
    rest = [event async for event in stream]

    assert first == RunStarted(1, False)
    assert produced_when_handed_over == []  # the writer had it before the burst began
    assert rest == [RunDelta("abc")]


async def test_deltas_produced_apart_are_sent_apart() -> None:
    async def trickle() -> AsyncGenerator[RunEvent, None]:
        for text in "ab":
            yield RunDelta(text)
            await asyncio.sleep(0.01)

    events = [event async for event in coalesced(trickle())]

    assert events == [RunDelta("a"), RunDelta("b")]


async def test_an_error_of_the_run_reaches_the_caller_after_the_events_before_it() -> None:
    broke = ValueError("agent broke")

    async def failing() -> AsyncGenerator[RunEvent, None]:
        yield RunDelta("partial")
        raise broke

    received: list[RunEvent] = []
    with pytest.raises(ValueError) as raised:
        async for event in coalesced(failing()):
            received.append(event)
    assert raised.value is broke
    assert received == [RunDelta("partial")]


async def test_closing_early_cancels_the_run_where_it_waits() -> None:
    waits = asyncio.Event()
    cancelled = asyncio.Event()

    async def waiting() -> AsyncGenerator[RunEvent, None]:
        yield RunStarted(1, replayed=False)
        try:
            waits.set()
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield RunDelta("never")

    stream = coalesced(waiting())
    assert await anext(stream) == RunStarted(1, False)
    await asyncio.wait_for(waits.wait(), 5)
    await stream.aclose()

    assert cancelled.is_set()
