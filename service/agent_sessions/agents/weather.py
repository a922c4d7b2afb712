"""The seed's weather agent: offline and deterministic, and only as smart as its context.

"How's the weather in Shanghai?" names both the topic and the city. "What about
Beijing?" names only a city: the agent takes the topic from the session (its state,
or the earlier turns), and without that context it cannot tell what is asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator

from agent_sessions.agents.protocol import AgentContext, AgentEvent
from agent_sessions.model import Item, ItemType, StateDelta

FORECASTS = {
    "shanghai": ("Shanghai", "sunny", 22),
    "beijing": ("Beijing", "cloudy", 18),
    "shenzhen": ("Shenzhen", "humid and warm", 27),
    "tokyo": ("Tokyo", "rainy", 16),
    "london": ("London", "foggy", 11),
    "new york": ("New York", "windy", 14),
    "paris": ("Paris", "clear", 19),
}
_CITY = re.compile(r"\b(" + "|".join(FORECASTS) + r")\b", re.IGNORECASE)
_WEATHER = re.compile(r"\b(weather|forecast|temperature|sunny|rain|raining|hot|cold)\b", re.I)
_GREETING = re.compile(r"^\s*(hello|hi|hey)\b", re.IGNORECASE)
_WORD = re.compile(r"\S+\s*")


def get_weather_call(city_key: str, turn_index: int) -> tuple[Item, Item]:
    """The ``get_weather`` tool call for a city and its result, as a model's items."""
    name, sky, celsius = FORECASTS[city_key]
    call_id = f"call-{turn_index}-{city_key.replace(' ', '-')}"
    arguments = json.dumps({"city": name})
    call = Item(
        ItemType.TOOL_CALL,
        json.dumps({"name": "get_weather", "arguments": arguments, "call_id": call_id}),
        role="assistant",
        name="get_weather",
        call_id=call_id,
    )
    result = Item(
        ItemType.TOOL_RESULT,
        json.dumps({"call_id": call_id, "output": {"city": name, "sky": sky, "celsius": celsius}}),
        role="tool",
        name="get_weather",
        call_id=call_id,
    )
    return call, result


class WeatherAgent:
    """Answers weather questions about a few cities, following the conversation."""

    reads_items = False

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        reply, delta = self._answer(context, text)
        city = delta.set.get("city_key") if "city" in delta.set else None
        if city is not None:
            # As a model would: call the weather tool, then answer from its result.
            for item in get_weather_call(str(city), context.turn_index):
                yield item
        for chunk in _WORD.findall(reply):
            yield chunk
        if delta:
            yield delta

    def _answer(self, context: AgentContext, text: str) -> tuple[str, StateDelta]:
        city_match = _CITY.search(text)
        asks_weather = bool(_WEATHER.search(text))
        if not asks_weather and city_match and self._talking_about_weather(context):
            asks_weather = True  # "What about Beijing?" after a weather question
        if asks_weather:
            key = city_match.group(1).lower() if city_match else context.state.get("city_key")
            if not key:
                return "Which city would you like the weather for?", StateDelta(
                    set={"topic": "weather"}
                )
            name, sky, celsius = FORECASTS[str(key)]
            return f"{name} is {sky} today, {celsius}°C", StateDelta(
                set={"topic": "weather", "city": name, "city_key": key}
            )
        if city_match:
            name = FORECASTS[city_match.group(1).lower()][0]
            return (
                f"What would you like to know about {name}? I can only tell the weather.",
                StateDelta(),
            )
        if _GREETING.search(text):
            return "Hello, what can I help you with?", StateDelta()
        return "I can tell you the weather, for example in Shanghai or Beijing.", StateDelta()

    @staticmethod
    def _talking_about_weather(context: AgentContext) -> bool:
        if context.state.get("topic") == "weather":
            return True
        return any(_WEATHER.search(turn.input) for turn in context.history)
