"""A model for the OpenAI Agents SDK's runner that answers from a script, offline.

Asked about the weather in a city, it calls the ``get_weather`` tool; given the tool's
result, it answers with it; anything else, it answers with how many items of history
it was sent, so a test sees what the session gave back. It records every input.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelResponse, Usage
from agents.items import TResponseInputItem, TResponseStreamEvent
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputItem,
    ResponseOutputMessage,
    ResponseOutputText,
)

_CITY = re.compile(r"weather in (\w+)", re.IGNORECASE)


class ScriptedModel(Model):
    def __init__(self) -> None:
        self.inputs: list[list[TResponseInputItem]] = []
        self._calls = 0

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        output = self._answer(kwargs.get("input", args[1] if len(args) > 1 else ""))
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    async def stream_response(
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TResponseStreamEvent]:
        output = self._answer(kwargs.get("input", args[1] if len(args) > 1 else ""))
        response = Response(
            id=f"resp-{self._calls}",
            created_at=0,
            model="scripted",
            object="response",
            output=output,
            parallel_tool_calls=False,
            tool_choice="auto",
            tools=[],
        )
        yield ResponseCompletedEvent(
            response=response, sequence_number=0, type="response.completed"
        )

    def _answer(self, given: str | list[TResponseInputItem]) -> list[ResponseOutputItem]:
        items: list[TResponseInputItem] = (
            [{"role": "user", "content": given}] if isinstance(given, str) else list(given)
        )
        self.inputs.append(items)
        self._calls += 1
        last: dict[str, Any] = dict(items[-1])
        if last.get("type") == "function_call_output":
            return [self._message(f"The weather: {last['output']}")]
        city = _CITY.search(str(last.get("content", "")))
        if last.get("role") == "user" and city:
            return [
                ResponseFunctionToolCall(
                    id=f"fc-{self._calls}",
                    call_id=f"call-{self._calls}",
                    name="get_weather",
                    arguments=json.dumps({"city": city.group(1)}),
                    type="function_call",
                    status="completed",
                )
            ]
        return [self._message(f"I was sent {len(items)} items; 你好")]

    def _message(self, text: str) -> ResponseOutputMessage:
        return ResponseOutputMessage(
            id=f"msg-{self._calls}",
            content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
            role="assistant",
            status="completed",
            type="message",
        )
