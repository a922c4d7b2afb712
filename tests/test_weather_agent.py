"""The seed's weather agent answers follow-ups only from the session's context."""

from __future__ import annotations

from agent_sessions.agents import AgentContext
from agent_sessions.agents.weather import WeatherAgent
from agent_sessions.model import JsonValue, StateDelta, Turn, TurnStatus


def context(history: list[str], state: dict[str, JsonValue] | None = None) -> AgentContext:
    turns = [
        Turn(i + 1, TurnStatus.COMPLETED, text, 0, output="…") for i, text in enumerate(history)
    ]
    return AgentContext("s", "u", "weather", len(history) + 1, state or {}, "", turns)


async def reply(ctx: AgentContext, text: str) -> tuple[str, StateDelta]:
    chunks, delta = [], StateDelta()
    async for event in WeatherAgent().stream(ctx, text):
        if isinstance(event, str):
            chunks.append(event)
        elif isinstance(event, StateDelta):
            delta = delta.merged(event)
    return "".join(chunks), delta


async def test_it_answers_a_weather_question_about_a_city() -> None:
    text, delta = await reply(context([]), "How's the weather in Shanghai?")

    assert text == "Shanghai is sunny today, 22°C"
    assert delta.set["topic"] == "weather"


async def test_it_resolves_a_follow_up_from_the_earlier_turns() -> None:
    text, _ = await reply(context(["How's the weather in Shanghai?"]), "What about Beijing?")

    assert text == "Beijing is cloudy today, 18°C"


async def test_it_resolves_a_follow_up_from_the_session_state() -> None:
    text, _ = await reply(context([], state={"topic": "weather"}), "What about Beijing?")

    assert text == "Beijing is cloudy today, 18°C"


async def test_without_context_it_cannot_tell_what_a_follow_up_asks() -> None:
    text, _ = await reply(context([]), "What about Beijing?")

    assert "°C" not in text
    assert "What would you like to know about Beijing?" in text


async def test_it_greets_like_the_seed() -> None:
    text, _ = await reply(context([]), "Hello")

    assert text == "Hello, what can I help you with?"
