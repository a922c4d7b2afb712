"""The built-in echo agent: deterministic, streamed in chunks, showing the context it got."""

from __future__ import annotations

from agent_sessions.agents import AgentContext, AgentEvent
from agent_sessions.agents.echo import EchoAgent
from agent_sessions.model import Turn, TurnStatus


def context(turn_index: int, previous_inputs: list[str]) -> AgentContext:
    history = [
        Turn(i + 1, TurnStatus.COMPLETED, text, 0, output="…")
        for i, text in enumerate(previous_inputs)
    ]
    return AgentContext("s", "u", "echo", turn_index, {}, "", history)


async def chunks(agent: EchoAgent, ctx: AgentContext, text: str) -> list[AgentEvent]:
    return [chunk async for chunk in agent.stream(ctx, text)]


async def test_echo_streams_its_reply_in_several_chunks() -> None:
    reply = await chunks(EchoAgent(), context(1, []), "How's the weather in Shanghai?")

    assert len(reply) > 3
    assert "".join(str(c) for c in reply) == "Echo (turn 1): How's the weather in Shanghai?"


async def test_echo_quotes_the_turn_number_and_the_previous_input() -> None:
    ctx = context(2, ["How's the weather in Shanghai?"])

    reply = "".join(str(c) for c in await chunks(EchoAgent(), ctx, "What about Beijing?"))

    assert reply == (
        'Echo (turn 2): What about Beijing? (previous: "How\'s the weather in Shanghai?")'
    )


async def test_echo_is_deterministic() -> None:
    ctx = context(3, ["a", "b"])

    assert await chunks(EchoAgent(), ctx, "c") == await chunks(EchoAgent(), ctx, "c")
