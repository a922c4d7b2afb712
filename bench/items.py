"""The items API as an agent that runs elsewhere uses it, against the frameworks' own stores.

One **turn** of an external-agent session is what a framework does per turn: one
AppendItems of the turn (a user message, a tool call, its result, the assistant's
reply; a few hundred bytes each, the items in the OpenAI Responses shape) and one
ListItems of the last 40 items (``order_by="sequence desc"``, ``page_size=40``), the
context of the next model call. C sessions take turns in parallel, one per worker.

Ours is measured at a history of 10, 1,000 and 10,000 items: the 10,000-item
sessions are pre-filled with appends of 1,000 items before the window opens; the
10-item ones are a pool of fresh sessions, one per turn (a session that took turns
would not stay at 10 items), so each measured turn finds exactly 10 items (more only
if a worker runs out of its pool; the range seen is reported).

The peers do the same work per turn in this process, on the same Redis, at 1,000
items: the OpenAI Agents SDK's ``RedisSession`` (``add_items`` of the same 4 items,
then ``get_items(limit=40)``) and Google ADK's ``RedisSessionService`` (4
``append_event`` calls, one event each as its runner appends them, then
``get_session`` with ``num_recent_events=40``). A peer whose import fails is skipped
with a note. The peers are libraries that talk to Redis themselves: ours goes through
gRPC to a server process that validates and numbers each item and keeps the turn
record, so the comparison counts that hop against it.

Then each framework's turn through our adapter (``GrpcSession``, ``GrpcSessionService``,
in this process, on the same server), against the same calls made raw and against the
framework's own store. ADK appends each event on its own, so its raw counterpart is 4
appends of one item, a read of the last 40 and a GetSession.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import grpc
import redis.asyncio
from agentsessions.sessions.v1 import sessions_pb2 as pb

from bench.load import Call, Cell, Load, measure
from bench.stub import Stub

CONCURRENCIES = (1, 16)
HISTORIES = (10, 1_000, 10_000)
PEER_HISTORY = 1_000
LAST = 40
"""Items each turn reads back: the last 40, newest first."""
PREFILL_CHUNK = 1_000
"""Items per pre-fill append (the bench's server takes up to this many at once)."""
FRESH_RATE = {1: 800, 16: 1_800}
"""Turns/s a pool of fresh 10-item sessions is sized for, by C (the range seen is reported)."""

USER = (
    "I'm flying into Shanghai on Friday morning and staying until Tuesday. What will the "
    "weather be like over those days, and should I plan the Bund walk for Saturday or "
    "Sunday? I'd also like to know whether I need a warm jacket for the evenings."
)
ARGUMENTS = '{"city": "Shanghai", "days": 5, "units": "metric", "include": ["hourly", "alerts"]}'
RESULT = json.dumps(
    {
        "city": "Shanghai",
        "forecast": [
            {"day": "Fri", "sky": "cloudy", "high": 23, "low": 17, "rain": 0.2},
            {"day": "Sat", "sky": "sunny", "high": 25, "low": 18, "rain": 0.0},
            {"day": "Sun", "sky": "rain", "high": 21, "low": 16, "rain": 0.8},
            {"day": "Mon", "sky": "sunny", "high": 24, "low": 17, "rain": 0.1},
            {"day": "Tue", "sky": "cloudy", "high": 22, "low": 16, "rain": 0.3},
        ],
        "alerts": [],
    }
)
ASSISTANT = (
    "Saturday is your best day for the Bund: sunny and 25°C, with no rain expected. Sunday "
    "looks wet (80% chance of rain), so keep it for museums. Evenings drop to 16-18°C, so a "
    "light jacket is enough; a warm one would be too much. Friday and Monday are mild too."
)


def openai_items(turn: str) -> list[dict[str, Any]]:
    """One turn in the OpenAI Responses shape (what the Agents SDK stores)."""
    call_id = f"call_{turn}"
    return [
        {"role": "user", "content": USER},
        {
            "type": "function_call",
            "name": "get_weather",
            "arguments": ARGUMENTS,
            "call_id": call_id,
        },
        {"type": "function_call_output", "call_id": call_id, "output": RESULT},
        {"role": "assistant", "content": ASSISTANT},
    ]


def our_items(turn: str) -> list[pb.Item]:
    """The same turn as items: the payloads are the same JSON the Agents SDK stores."""
    user, call, result, reply = (json.dumps(item) for item in openai_items(turn))
    call_id = f"call_{turn}"
    return [
        pb.Item(type=pb.ITEM_TYPE_MESSAGE, role="user", payload_json=user),
        pb.Item(
            type=pb.ITEM_TYPE_TOOL_CALL, name="get_weather", call_id=call_id, payload_json=call
        ),
        pb.Item(type=pb.ITEM_TYPE_TOOL_RESULT, call_id=call_id, payload_json=result),
        pb.Item(type=pb.ITEM_TYPE_MESSAGE, role="assistant", payload_json=reply),
    ]


def _history(count: int, make: Callable[[str], list[Any]], label: str) -> list[Any]:
    """``count`` items of whole turns (the last one cut short if need be)."""
    items: list[Any] = []
    turn = 0
    while len(items) < count:
        items += make(f"{label}-{turn}")
        turn += 1
    return items[:count]


def payload_bytes() -> list[int]:
    return [len(json.dumps(item).encode()) for item in openai_items("0")]


# Results


@dataclass
class ItemsResults:
    cells: dict[tuple[str, int, int], Cell] = field(default_factory=dict)
    """(system, history in items, C) -> the measured window."""
    seen: dict[tuple[str, int, int], tuple[int, int]] = field(default_factory=dict)
    """Ours: the fewest and most items a measured turn found before its append."""
    notes: list[str] = field(default_factory=list)


OURS = "agent-sessions"
OPENAI = "openai-agents RedisSession"
ADK = "google-adk RedisSessionService"
OURS_ADK_CALLS = "agent-sessions, ADK's calls"
"""Ours, raw, making the calls ADK's turn makes: an append per event, then a read."""
OPENAI_ADAPTER = "GrpcSession (openai-agents on ours)"
ADK_ADAPTER = "GrpcSessionService (google-adk on ours)"
ADAPTERS = {OPENAI_ADAPTER: OPENAI, ADK_ADAPTER: ADK}
"""Our adapters, by the framework store each stands in for."""
RAW_TURN = {OPENAI_ADAPTER: OURS, ADK_ADAPTER: OURS_ADK_CALLS}
"""The raw turn on our server that each adapter's turn is the same work as."""


def _skip(results: ItemsResults, system: str, error: ImportError) -> None:
    note = f"{system}: skipped, its import failed ({error})"
    results.notes.append(note)
    _progress(note)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def describe(system: str, history: int, concurrency: int, cell: Cell) -> str:
    return (
        f"items {system} {history:,} items C={concurrency}: {_rate(cell):>7} turns/s"
        f"  p50 {cell.percentile(50):6.2f} ms  p99 {cell.percentile(99):6.2f} ms"
    )


# Ours


class _Seen:
    def __init__(self) -> None:
        self.low = math.inf
        self.high = 0.0

    def add(self, value: int) -> None:
        self.low = min(self.low, value)
        self.high = max(self.high, value)


def _turn_calls(
    stub: Stub, pools: Sequence[Sequence[tuple[str, str]]], label: str
) -> tuple[Call, _Seen]:
    """Worker ``i``'s turn ``n`` goes to ``pools[i][n % len(pools[i])]``."""
    seen = _Seen()

    async def call(i: int, n: int) -> int:
        pool = pools[i]
        session_id, user_id = pool[n % len(pool)]
        turn = f"{label}-{i}-{n}"
        appended: pb.AppendItemsResponse = await stub.AppendItems(
            pb.AppendItemsRequest(
                session_id=session_id,
                user_id=user_id,
                items=our_items(turn),
                # As the project's client sends one with every append.
                request_id=turn,
            )
        )
        seen.add(appended.items[0].sequence - 1)
        await stub.ListItems(
            pb.ListItemsRequest(
                session_id=session_id, user_id=user_id, order_by="sequence desc", page_size=LAST
            )
        )
        return 2

    return call, seen


def _adk_shaped_calls(stub: Stub, pools: Sequence[Sequence[tuple[str, str]]], label: str) -> Call:
    """ADK's turn with the raw stub: ADK appends each event on its own (conditional on
    the newest item, as the adapter does), then reads the session and its last events."""
    newest: dict[tuple[str, str], int] = {}

    async def call(i: int, n: int) -> int:
        session_id, user_id = pools[i][0]
        for item in our_items(f"{label}-{i}-{n}"):
            request = pb.AppendItemsRequest(
                session_id=session_id, user_id=user_id, items=[item], request_id=uuid4().hex
            )
            if (session_id, user_id) in newest:
                request.expected_last_sequence = newest[session_id, user_id]
            appended: pb.AppendItemsResponse = await stub.AppendItems(request)
            newest[session_id, user_id] = appended.items[-1].sequence
        await stub.ListItems(
            pb.ListItemsRequest(
                session_id=session_id, user_id=user_id, order_by="sequence desc", page_size=LAST
            )
        )
        await stub.GetSession(pb.GetSessionRequest(session_id=session_id, user_id=user_id))
        return 6

    return call


async def bench_ours_adk_calls(
    results: ItemsResults,
    channel: grpc.aio.Channel,
    server_pid: int,
    redis_pid: int | None,
    *,
    warmup: float,
    seconds: float,
) -> None:
    """The raw turn that the ADK adapter's turn is the same work as, at 1,000 items."""
    stub = Stub(channel)
    for concurrency in CONCURRENCIES:
        label = f"adk-calls-c{concurrency}"
        pools = await _pools(stub, label, PEER_HISTORY, concurrency, 1)
        load = Load(concurrency, warmup, seconds, [server_pid], redis_pid)
        cell = await measure(_adk_shaped_calls(stub, pools, label), load)
        results.cells[OURS_ADK_CALLS, PEER_HISTORY, concurrency] = cell
        _progress(describe(OURS_ADK_CALLS, PEER_HISTORY, concurrency, cell))


async def _new_session(stub: Stub, user_id: str, history: int, label: str) -> tuple[str, str]:
    session: pb.Session = await stub.CreateSession(
        pb.CreateSessionRequest(user_id=user_id, agent_id="external-bench", external_agent=True)
    )
    items = _history(history, our_items, label)
    for start in range(0, len(items), PREFILL_CHUNK):
        await stub.AppendItems(
            pb.AppendItemsRequest(
                session_id=session.session_id,
                user_id=user_id,
                items=items[start : start + PREFILL_CHUNK],
            )
        )
    return session.session_id, user_id


async def _pools(
    stub: Stub, label: str, history: int, concurrency: int, per_worker: int
) -> list[list[tuple[str, str]]]:
    """``per_worker`` sessions of ``history`` items for each of ``concurrency`` workers."""
    pools: list[list[tuple[str, str]]] = [[] for _ in range(concurrency)]
    slots = [(i, j) for j in range(per_worker) for i in range(concurrency)]
    batch = 16
    for start in range(0, len(slots), batch):
        made = await asyncio.gather(
            *(
                _new_session(stub, f"{label}-w{i}", history, f"{label}-w{i}-s{j}")
                for i, j in slots[start : start + batch]
            )
        )
        for (i, _), session in zip(slots[start : start + batch], made, strict=True):
            pools[i].append(session)
    return pools


async def bench_ours(
    results: ItemsResults,
    channel: grpc.aio.Channel,
    server_pid: int,
    redis_pid: int | None,
    *,
    warmup: float,
    seconds: float,
) -> None:
    stub = Stub(channel)
    for concurrency in CONCURRENCIES:
        for history in HISTORIES:
            label = f"items-h{history}-c{concurrency}"
            if history <= 10:
                turns = FRESH_RATE[concurrency] * (warmup + seconds) * 1.25
                per_worker = max(8, math.ceil(turns / concurrency))
            else:
                per_worker = 1
            _progress(
                f"items: {concurrency * per_worker:,} session(s) of {history:,} items "
                f"for C={concurrency}"
            )
            pools = await _pools(stub, label, history, concurrency, per_worker)
            call, seen = _turn_calls(stub, pools, label)
            load = Load(concurrency, warmup, seconds, [server_pid], redis_pid)
            cell = await measure(call, load)
            results.cells[OURS, history, concurrency] = cell
            results.seen[OURS, history, concurrency] = (int(seen.low), int(seen.high))
            _progress(describe(OURS, history, concurrency, cell))


# Peers


async def _measure_peer(
    results: ItemsResults,
    system: str,
    prepare: Callable[[int], Awaitable[Call]],
    redis_pid: int | None,
    *,
    warmup: float,
    seconds: float,
    server_pids: Sequence[int] = (),
) -> None:
    """Each worker takes turns in a session of its own, pre-filled with 1,000 items.

    A peer whose turn is slow gets a longer window, so that it completes several turns:
    8 turns' time of one worker (a turn is timed first), capped at 10 s (or at 4 times
    ``seconds`` if that is longer).
    """
    for concurrency in CONCURRENCIES:
        call = await prepare(concurrency)
        started = time.perf_counter()
        await call(0, -1)
        one_turn = time.perf_counter() - started
        window = max(seconds, min(max(4 * seconds, 10.0), 8 * concurrency * one_turn))
        seen = _Seen()

        async def counted(i: int, n: int, call: Call = call, seen: _Seen = seen) -> int:
            # One session per worker: turn n finds the pre-fill and 4 items a turn
            # (worker 0's timed turn too).
            seen.add(PEER_HISTORY + 4 * (n + (i == 0)))
            return await call(i, n)

        # The peer runs in this process: its CPU is the client's (an adapter's server
        # is measured apart).
        load = Load(concurrency, warmup, window, list(server_pids), redis_pid)
        cell = await measure(counted, load)
        results.cells[system, PEER_HISTORY, concurrency] = cell
        results.seen[system, PEER_HISTORY, concurrency] = (int(seen.low), int(seen.high))
        _progress(describe(system, PEER_HISTORY, concurrency, cell))


async def bench_openai_agents(
    results: ItemsResults, redis_url: str, redis_pid: int | None, *, warmup: float, seconds: float
) -> None:
    try:
        from agents.extensions.memory import RedisSession
    except ImportError as error:
        _skip(results, OPENAI, error)
        return
    client = redis.asyncio.Redis.from_url(redis_url)
    try:

        async def prepare(concurrency: int) -> Call:
            sessions = [
                RedisSession(f"c{concurrency}-{i}", redis_client=client, key_prefix="bench:oai")
                for i in range(concurrency)
            ]
            history: Any = _history(PEER_HISTORY, openai_items, f"oai-c{concurrency}")
            await asyncio.gather(*(session.add_items(history) for session in sessions))

            async def call(i: int, n: int) -> int:
                session = sessions[i]
                turn: Any = openai_items(f"oai-{concurrency}-{i}-{n}")
                await session.add_items(turn)
                await session.get_items(limit=LAST)
                return 2

            return call

        await _measure_peer(results, OPENAI, prepare, redis_pid, warmup=warmup, seconds=seconds)
    finally:
        await client.aclose()


async def bench_openai_adapter(
    results: ItemsResults,
    address: str,
    server_pid: int,
    redis_pid: int | None,
    *,
    warmup: float,
    seconds: float,
) -> None:
    """The OpenAI Agents SDK's turn (add_items, get_items(limit=40)) through GrpcSession."""
    try:
        from agent_sessions_client.openai_agents import GrpcSession
    except ImportError as error:
        _skip(results, OPENAI_ADAPTER, error)
        return

    async def prepare(concurrency: int) -> Call:
        sessions = [
            GrpcSession(f"oa-c{concurrency}-{i}", user_id=f"adapter-{i}", target=address)
            for i in range(concurrency)
        ]
        history: Any = _history(PEER_HISTORY, openai_items, f"oa-c{concurrency}")
        await asyncio.gather(*(session.add_items(history) for session in sessions))

        async def call(i: int, n: int) -> int:
            session = sessions[i]
            turn: Any = openai_items(f"oa-{concurrency}-{i}-{n}")
            await session.add_items(turn)
            await session.get_items(limit=LAST)
            return 2

        return call

    await _measure_peer(
        results,
        OPENAI_ADAPTER,
        prepare,
        redis_pid,
        warmup=warmup,
        seconds=seconds,
        server_pids=[server_pid],
    )


def adk_events(turn: str) -> list[Any]:
    """The same turn as ADK events: the user's, the model's call, its response, the reply."""
    from google.adk.events import Event
    from google.genai import types

    call_id = f"call_{turn}"
    result = json.loads(RESULT)
    return [
        Event(
            invocation_id=turn,
            author="user",
            content=types.Content(role="user", parts=[types.Part(text=USER)]),
        ),
        Event(
            invocation_id=turn,
            author="weather_agent",
            content=types.Content(
                role="model",
                parts=[
                    types.Part(
                        function_call=types.FunctionCall(
                            id=call_id, name="get_weather", args=json.loads(ARGUMENTS)
                        )
                    )
                ],
            ),
        ),
        Event(
            invocation_id=turn,
            author="weather_agent",
            content=types.Content(
                role="user",
                parts=[
                    types.Part(
                        function_response=types.FunctionResponse(
                            id=call_id, name="get_weather", response=result
                        )
                    )
                ],
            ),
        ),
        Event(
            invocation_id=turn,
            author="weather_agent",
            content=types.Content(role="model", parts=[types.Part(text=ASSISTANT)]),
        ),
    ]


def _adk_turns(service: Any, held: list[Any], label: str) -> Call:
    """ADK's turn in worker ``i``'s session ``held[i]`` (of any ADK session service), as
    its runner makes it: an ``append_event`` per event, then ``get_session`` of the last
    40 events, whose result the next turn appends through."""
    from google.adk.sessions.base_session_service import GetSessionConfig

    recent = GetSessionConfig(num_recent_events=LAST)

    async def call(i: int, n: int) -> int:
        session = held[i]
        for event in adk_events(f"{label}-{i}-{n}"):
            await service.append_event(session, event)
        fresh = await service.get_session(
            app_name=session.app_name, user_id=session.user_id, session_id=session.id, config=recent
        )
        assert fresh is not None
        held[i] = fresh
        return 5

    return call


async def bench_adk_adapter(
    results: ItemsResults,
    address: str,
    server_pid: int,
    redis_pid: int | None,
    *,
    warmup: float,
    seconds: float,
) -> None:
    """ADK's turn (4 append_event, get_session of the last 40) through GrpcSessionService."""
    try:
        from google.adk.sessions import Session
        from google.adk.sessions.base_session_service import GetSessionConfig

        from agent_sessions_client import AsyncSessionClient
        from agent_sessions_client.adk import GrpcSessionService, _item
    except ImportError as error:
        _skip(results, ADK_ADAPTER, error)
        return
    service = GrpcSessionService(address)
    recent = GetSessionConfig(num_recent_events=LAST)
    app = "bench"

    async def prepare(concurrency: int) -> Call:
        held: list[Session] = []
        async with AsyncSessionClient(address) as client:
            for i in range(concurrency):
                session = await service.create_session(
                    app_name=app, user_id=f"adapter-c{concurrency}-{i}", state={}
                )
                # Pre-filled as append_event would have, in appends of 1,000 items.
                history = _history(PEER_HISTORY, adk_events, f"ga-c{concurrency}-{i}")
                handle = await client.load_session(session.id, user_id=session.user_id, app=app)
                for start in range(0, len(history), PREFILL_CHUNK):
                    chunk = history[start : start + PREFILL_CHUNK]
                    await handle.append_items([_item(event) for event in chunk])
                fresh = await service.get_session(
                    app_name=app, user_id=session.user_id, session_id=session.id, config=recent
                )
                assert fresh is not None and len(fresh.events) == LAST
                held.append(fresh)

        return _adk_turns(service, held, f"ga-{concurrency}")

    try:
        await _measure_peer(
            results,
            ADK_ADAPTER,
            prepare,
            redis_pid,
            warmup=warmup,
            seconds=seconds,
            server_pids=[server_pid],
        )
    finally:
        await service.close()


async def bench_adk(
    results: ItemsResults, redis_url: str, redis_pid: int | None, *, warmup: float, seconds: float
) -> None:
    try:
        from google.adk.integrations.redis import RedisSessionService, RedisSessionServiceConfig
        from google.adk.sessions import Session
        from google.adk.sessions.base_session_service import GetSessionConfig
    except ImportError as error:
        _skip(results, ADK, error)
        return

    service = RedisSessionService(RedisSessionServiceConfig(uri=redis_url, ttl_seconds=3600))
    writer = redis.asyncio.Redis.from_url(redis_url)
    app = "bench"
    recent = GetSessionConfig(num_recent_events=LAST)
    try:

        async def prepare(concurrency: int) -> Call:
            held: list[Session] = []
            for i in range(concurrency):
                session = await service.create_session(
                    app_name=app, user_id=f"c{concurrency}-{i}", state={}
                )
                # Pre-filled with the record append_event would have written after 1,000
                # events (appending them one by one rewrites the record each time).
                session.events = _history(PEER_HISTORY, adk_events, f"adk-c{concurrency}-{i}")
                key = f"{service.config.key_prefix}{app}:{session.user_id}:{session.id}"
                await writer.set(key, session.model_dump_json(), ex=3600)
                fresh = await service.get_session(
                    app_name=app, user_id=session.user_id, session_id=session.id, config=recent
                )
                assert fresh is not None and len(fresh.events) == LAST
                held.append(fresh)

            return _adk_turns(service, held, f"adk-{concurrency}")

        await _measure_peer(results, ADK, prepare, redis_pid, warmup=warmup, seconds=seconds)
    finally:
        await writer.aclose()
        client = service._get_redis()
        await client.aclose()


# The report


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _rate(cell: Cell) -> str:
    return f"{cell.rate:,.0f}" if cell.rate >= 10 else f"{cell.rate:.2f}"


def render(results: ItemsResults) -> str:
    sizes = ", ".join(f"{size}" for size in payload_bytes())
    out = [
        "\n## Items: a turn of an agent that runs elsewhere (Redis)\n\n"
        "A turn: one AppendItems of a user message, a tool call, its result and the "
        f"assistant's reply (payloads of {sizes} bytes of JSON, the OpenAI Responses shape), "
        f"then one ListItems of the last {LAST} (`sequence desc`). Sessions created with "
        "`external_agent`, C of them taking turns in parallel; the server runs with "
        "compaction off (`--max-history-turns 0 --max-history-bytes 0`), so histories keep "
        "every item. The 10-item sessions are fresh ones, one per turn; the larger ones are "
        "pre-filled with appends of 1,000 items and grow by 4 a turn while measured "
        "(the history column gives the range the measured turns found). At 10 items the "
        f"list returns 14 items, {LAST} from 1,000 on. The peers run in the load process "
        "(they are libraries), on the same Redis, from 1,000 items; their CPU is the "
        "client's, and a slow one is measured over a longer window (up to 10 s) so that it "
        "completes a few turns.\n\n"
        "| system | history (items) | C | turns/s | p50 ms | p99 ms | server CPU µs/turn "
        "| redis-server CPU µs/turn | client CPU µs/turn |\n" + "|---" * 9 + "|\n"
    ]
    for (system, history, concurrency), cell in results.cells.items():
        low, high = results.seen.get((system, history, concurrency), (history, history))
        span = f"{low:,}" if low == high else f"{low:,}-{high:,}"
        on_ours = system in (OURS, OURS_ADK_CALLS) or system in ADAPTERS
        server = _us(cell.per_call_us(cell.server_cpu)) if on_ours else "-"
        out.append(
            f"| {system} | {span} | {concurrency} | {_rate(cell)} | "
            f"{cell.percentile(50):.2f} | {cell.percentile(99):.2f} | {server} "
            f"| {_us(cell.per_call_us(cell.redis_cpu))} "
            f"| {_us(cell.per_call_us(cell.client_cpu))} |\n"
        )
    out.append(
        "\n**History length** (ours, 10,000 items against 10; target: flat, the items are a "
        "sorted set, so both calls are O(log N + M)). Against 10 items the list also grows "
        f"from 14 items to {LAST}; against 1,000 both lists return {LAST}:\n\n"
        "| C | against | turns/s ratio | p50 ratio | p99 ratio |\n|---|---|---|---|---|\n"
    )
    for concurrency in CONCURRENCIES:
        large = results.cells.get((OURS, 10_000, concurrency))
        for base in (10, 1_000):
            small = results.cells.get((OURS, base, concurrency))
            if small is None or large is None:
                continue
            out.append(
                f"| {concurrency} | {base:,} items | {large.rate / small.rate:.2f}x "
                f"| {large.percentile(50) / small.percentile(50):.2f}x "
                f"| {large.percentile(99) / small.percentile(99):.2f}x |\n"
            )
    peers = [p for p in (OPENAI, ADK) if any(key[0] == p for key in results.cells)]
    if peers:
        out.append(
            f"\n**Against the peers** at {PEER_HISTORY:,} items (our turns/s over theirs):\n\n"
            "| peer | C | turns/s ours / theirs | ratio |\n|---|---|---|---|\n"
        )
        for peer in peers:
            for concurrency in CONCURRENCIES:
                ours = results.cells.get((OURS, PEER_HISTORY, concurrency))
                theirs = results.cells.get((peer, PEER_HISTORY, concurrency))
                if ours is None or theirs is None:
                    continue
                ratio = f"{ours.rate / theirs.rate:,.0f}x" if theirs.rate else "-"
                if theirs.rate and ours.rate / theirs.rate < 10:
                    ratio = f"{ours.rate / theirs.rate:.2f}x"
                out.append(
                    f"| {peer} | {concurrency} | {_rate(ours)} / {_rate(theirs)} | {ratio} |\n"
                )
    adapters = [a for a in ADAPTERS if any(key[0] == a for key in results.cells)]
    if adapters:
        out.append(
            f"\n**The framework adapters** at {PEER_HISTORY:,} items: the framework's own turn "
            "through our adapter, against the same calls made raw on our server (target: at "
            "most 1.5x its time, that is turns/s ratio >= 0.67x) and against the framework's "
            "own Redis store (target: more turns/s). The raw turn of the OpenAI SDK's is the "
            f"one above (an append of 4 items, a read of {LAST}); ADK appends each event on "
            f"its own, so its raw turn ({OURS_ADK_CALLS}) is 4 appends of one item, a read "
            f"of {LAST} and a GetSession, as the adapter's:\n\n"
            "| adapter | C | turns/s adapter / raw / framework's store | against raw "
            "| against the framework's store |\n|---|---|---|---|---|\n"
        )
        for adapter in adapters:
            for concurrency in CONCURRENCIES:
                mine = results.cells.get((adapter, PEER_HISTORY, concurrency))
                raw = results.cells.get((RAW_TURN[adapter], PEER_HISTORY, concurrency))
                store = results.cells.get((ADAPTERS[adapter], PEER_HISTORY, concurrency))
                if mine is None:
                    continue
                against_raw = f"{mine.rate / raw.rate:.2f}x" if raw and raw.rate else "-"
                against_store = "-"
                if store is not None and store.rate:
                    times = mine.rate / store.rate
                    against_store = f"{times:.2f}x" if times < 10 else f"{times:,.0f}x"
                rates = " / ".join(
                    _rate(cell) if cell is not None else "-" for cell in (mine, raw, store)
                )
                out.append(
                    f"| {adapter} | {concurrency} | {rates} | {against_raw} | {against_store} |\n"
                )
    for note in results.notes:
        out.append(f"\n{note}\n")
    return "".join(out)
