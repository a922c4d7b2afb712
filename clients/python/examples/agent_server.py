"""An agent as a service of its own: AgentService in Python, with only the stubs.

A team that writes an agent implements one streaming RPC, Generate: the session
service sends the session's context (state, summary, recent turns) with the user's
input, and the agent streams back its reply, a state update and its token usage.
This one answers the seed's weather conversation from a made-up forecast:

    User: How's the weather in Shanghai?   Agent: Shanghai is sunny today, 22°C.
    User: What about Beijing?              Agent: Beijing is cloudy today, 18°C.

The second question names no topic: the agent finds it in the session's state
(which it set in the first turn) or in the history. Two inputs show the other
paths: "slow" streams a word every 0.2 s for 10 s (cancel the run to see the
cancellation arrive here), and "fail" fails with INTERNAL.

    python clients/python/examples/agent_server.py --address 127.0.0.1:50061
    session-server --agents '{"remote-weather": {"kind": "grpc", "target": "127.0.0.1:50061"}}'
    sessionctl chat --user user-123 --agent remote-weather
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc
from agentsessions.agents.v1 import agents_pb2 as pb
from agentsessions.agents.v1 import agents_pb2_grpc
from agentsessions.sessions.v1 import sessions_pb2

log = logging.getLogger("agent_server")

FORECASTS = {
    "shanghai": ("Shanghai", "sunny", 22),
    "beijing": ("Beijing", "cloudy", 18),
    "tokyo": ("Tokyo", "rainy", 16),
}
_CITY = re.compile(r"\b(" + "|".join(FORECASTS) + r")\b", re.IGNORECASE)
_WEATHER = re.compile(r"\b(weather|forecast|temperature|sunny|rain|cold|hot)\b", re.IGNORECASE)
_WORD = re.compile(r"\S+\s*")

SLOW_WORDS = 50
SLOW_PAUSE_S = 0.2

Context = grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateResponse]


class WeatherAgentService(agents_pb2_grpc.AgentServiceServicer):
    """Answers weather questions about a few cities, following the conversation.

    It keeps every request it received and every request whose call was cancelled,
    so that tests can see what the session service sent and when it gave up.
    """

    def __init__(self) -> None:
        self.received: list[pb.GenerateRequest] = []
        self.cancelled: list[pb.GenerateRequest] = []

    async def Generate(
        self, request: pb.GenerateRequest, context: Context
    ) -> AsyncIterator[pb.GenerateResponse]:
        self.received.append(request)
        log.info("session %s turn %d: %r", request.session_id, request.turn_index, request.input)
        if request.input == "fail":
            # A status message is what the session service records as the turn's error.
            await context.abort(grpc.StatusCode.INTERNAL, "the weather service is down")
        try:
            if request.input == "slow":
                for n in range(1, SLOW_WORDS + 1):
                    yield text(f"{n} ")
                    await asyncio.sleep(SLOW_PAUSE_S)
                return
            reply, city = answer(request)
            if city:
                # As a model would: call the weather tool, then answer from its result.
                for item in weather_tool_call(city, request.turn_index):
                    yield pb.GenerateResponse(item=item)
            for word in _WORD.findall(reply):  # word by word, as a model would stream it
                yield text(word)
            if city:
                update = pb.StateUpdate(set_json=json.dumps({"topic": "weather", "city": city}))
                yield pb.GenerateResponse(state_update=update)
            # Word counts stand in for the model tokens a real agent would report.
            usage = pb.Usage(
                input_tokens=len(request.input.split()), output_tokens=len(reply.split())
            )
            yield pb.GenerateResponse(usage=usage)
        except (asyncio.CancelledError, GeneratorExit):
            # grpc.aio cancels the handler when the session service cancels the call
            # (its caller went away, or the turn timed out): stop working at once.
            log.info("session %s turn %d: cancelled", request.session_id, request.turn_index)
            self.cancelled.append(request)
            raise

    async def Summarize(
        self, request: pb.SummarizeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.SummarizeResponse:
        """Folds the turns into one line naming the cities they asked about."""
        first, last = request.turns[0].index, request.turns[-1].index
        names = (name.lower() for turn in request.turns for name in _CITY.findall(turn.input))
        cities = list(dict.fromkeys(FORECASTS[name][0] for name in names if name in FORECASTS))
        topic = f"the weather in {', '.join(cities)}" if cities else "other things"
        line = f"Turns {first}-{last}: the user asked about {topic}."
        return pb.SummarizeResponse(summary="\n".join(filter(None, [request.summary, line])))


def weather_tool_call(city: str, turn_index: int) -> tuple[sessions_pb2.Item, sessions_pb2.Item]:
    """The get_weather call for a city and its result, as items stored with the turn."""
    call_id = f"call-{turn_index}"
    call = sessions_pb2.Item(
        type=sessions_pb2.ITEM_TYPE_TOOL_CALL,
        role="assistant",
        name="get_weather",
        call_id=call_id,
        payload_json=json.dumps({"name": "get_weather", "arguments": json.dumps({"city": city})}),
    )
    result = sessions_pb2.Item(
        type=sessions_pb2.ITEM_TYPE_TOOL_RESULT,
        role="tool",
        name="get_weather",
        call_id=call_id,
        payload_json=json.dumps({"call_id": call_id, "output": FORECASTS[city.lower()]}),
    )
    return call, result


def text(chunk: str) -> pb.GenerateResponse:
    """A response carrying one piece of the reply."""
    return pb.GenerateResponse(text=pb.TextDelta(text=chunk))


def answer(request: pb.GenerateRequest) -> tuple[str, str | None]:
    """The reply, and the city whose weather it gave (None when it gave none)."""
    state: dict[str, Any] = json.loads(request.state_json or "{}")
    named = _CITY.search(request.input)
    about_weather = bool(_WEATHER.search(request.input)) or (
        named is not None and _talking_about_weather(request, state)
    )
    if not about_weather:
        return "I can tell you the weather in Shanghai, Beijing or Tokyo.", None
    # "And the forecast?" names no city: the one from earlier in the session, if any.
    key = named.group(1).lower() if named else str(state.get("city", "")).lower()
    if key not in FORECASTS:
        return "Which city would you like the weather for?", None
    city, sky, celsius = FORECASTS[key]
    return f"{city} is {sky} today, {celsius}°C.", city


def _talking_about_weather(request: pb.GenerateRequest, state: dict[str, Any]) -> bool:
    """Whether the session is about the weather: the state says so, or an earlier turn."""
    if state.get("topic") == "weather":
        return True
    return any(_WEATHER.search(exchange.input) for exchange in request.history)


async def start_server(
    address: str, service: WeatherAgentService | None = None
) -> tuple[grpc.aio.Server, int]:
    """A started server for ``service`` on ``address`` (port 0 picks one), and its port."""
    server = grpc.aio.server()
    agents_pb2_grpc.add_AgentServiceServicer_to_server(service or WeatherAgentService(), server)
    port = server.add_insecure_port(address)
    await server.start()
    return server, port


async def serve(address: str) -> None:
    """Serves until SIGINT or SIGTERM, then lets running calls finish for a few seconds."""
    server, port = await start_server(address)
    log.info(
        "serving agentsessions.agents.v1.AgentService on %s:%d", address.rpartition(":")[0], port
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await server.stop(grace=5)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the example weather agent over gRPC.")
    parser.add_argument("--address", default="127.0.0.1:50061", help="host:port to listen on")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(arguments.address))


if __name__ == "__main__":
    main()
