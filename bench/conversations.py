# ruff: noqa: RUF001  (real Chinese text uses fullwidth punctuation)
"""Long conversations: their size in Redis (with and without zstd turns) and the cost of
a Run deep into one.

The text is realistic chat: a user question, then a reply of a few hundred to a couple of
thousand bytes made of distinct sentences (no sentence repeats within a reply, so zstd
gets no easier a job than on real answers), some of it non-ASCII.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import redis.asyncio
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import timestamp_pb2

from agent_sessions.agents import AgentContext, AgentEvent, AgentRegistry
from agent_sessions.config import Settings
from agent_sessions.sessions import SessionManager
from agent_sessions.store.redis import RedisSessionStore
from bench.load import run_once
from bench.stub import Stub
from launchers.redis_server import RedisServer

QUESTIONS = [
    "How's the weather in Shanghai this week?",
    "What about Beijing? I land there on Friday morning.",
    "Should I pack an umbrella, or is a light jacket enough?",
    "Can you suggest three restaurants near the Bund that take reservations?",
    "我周末去杭州，需要带什么衣服？",
    "What is the fastest way from Pudong airport to People's Square at night?",
]
SENTENCES = [
    "Shanghai is expected to stay mild this week, with highs around 24°C and lows near 17°C.",
    "Rain is likely on Wednesday afternoon, so plan indoor visits for that day.",
    "The humidity will sit between 70 and 85 percent, which makes it feel warmer than it is.",
    "Beijing is drier and cooler: expect clear skies, 19°C in the day and 8°C at night.",
    "A light jacket is enough for the evenings, but a compact umbrella takes little room.",
    "Air quality in Beijing has been good recently, with an AQI mostly under 60.",
    "If you land on Friday morning, the airport express to Dongzhimen takes about 20 minutes.",
    "Taxis from the airport queue outside terminal 3; have your hotel address in Chinese.",
    "Near the Bund, many restaurants book out on weekends, so reserve two or three days ahead.",
    "For a view of the river, ask for a window table when you book and arrive before sunset.",
    "杭州周末气温在十五到二十二度之间，早晚温差较大，建议带一件薄外套。",
    "西湖边风比较大，如果计划骑车环湖，最好准备一顶帽子和防晒霜。",
    "At night, the maglev stops running around 21:40; after that, line 2 or a taxi are best.",
    "Line 2 takes about an hour to People's Square and costs less than ten yuan.",
    "A taxi costs roughly 200 yuan at night and takes 40 minutes without traffic.",
    "Payment apps are widely used; set one up before you travel, as some shops take no cash.",
    "Museums are closed on Mondays, so check opening days before you build your plan.",
    "The weekend forecast may change, so I will check again on Thursday if you ask me.",
    "Tell me your budget and I can narrow the restaurant list to a few that fit it.",
    "Most hotels can hold luggage after checkout, which helps on a late flight.",
]


def conversation(turns: int, seed: int = 7) -> list[tuple[str, str]]:
    """``turns`` (question, reply) pairs of chat text, the same for the same seed."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(turns):
        reply = " ".join(rng.sample(SENTENCES, rng.randint(3, 14)))
        pairs.append((rng.choice(QUESTIONS), reply))
    return pairs


class ScriptedReplies:
    """An agent that answers with the next reply of a prepared conversation."""

    def __init__(self, replies: list[str]) -> None:
        self._replies = iter(replies)

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        yield next(self._replies)


@dataclass(frozen=True)
class SessionSize:
    turns: int
    compressed: bool
    bytes_in_redis: int
    text_bytes: int


async def session_size(
    redis_server: RedisServer, turns: int, *, compress: bool, prefix: str
) -> SessionSize:
    """Runs ``turns`` turns of chat into one session (no compaction) and measures it."""
    pairs = conversation(turns)
    store = RedisSessionStore.from_url(
        redis_server.url, prefix=prefix, compress_over_bytes=512 if compress else 0
    )
    agents = AgentRegistry({"chat": ScriptedReplies([reply for _, reply in pairs])})
    policy = Settings.model_validate({"max_history_turns": 0, "max_history_bytes": 0}).policy()
    manager = SessionManager(store, agents, policy)
    try:
        session = await manager.create(user_id="sizer", agent_id="chat")
        for question, _ in pairs:
            async for _ in manager.run(
                user_id="sizer", session_id=session.session_id, text=question
            ):
                pass
        raw = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            keys = [key async for key in raw.scan_iter(match=f"{prefix}*:s:{session.session_id}*")]
            used = sum([await raw.memory_usage(key, samples=0) or 0 for key in keys])
        finally:
            await raw.aclose()
    finally:
        await store.close()
    text = sum(len(q.encode()) + len(r.encode()) for q, r in pairs)
    return SessionSize(turns, compress, used, text)


async def sizes(redis_server: RedisServer) -> list[SessionSize]:
    results = []
    for turns in (10, 100, 1000):
        for compress in (False, True):
            prefix = f"bench-size-{turns}-{int(compress)}:"
            results.append(
                await session_size(redis_server, turns, compress=compress, prefix=prefix)
            )
    return results


def report(results: list[SessionSize]) -> list[str]:
    lines = [
        "| turns | text (KiB) | Redis, plain JSON (KiB) | Redis, zstd turns (KiB) | ratio |",
        "|---|---|---|---|---|",
    ]
    by_turns: dict[int, dict[bool, SessionSize]] = {}
    for result in results:
        by_turns.setdefault(result.turns, {})[result.compressed] = result
    for turns, pair in sorted(by_turns.items()):
        plain, packed = pair[False], pair[True]
        lines.append(
            f"| {turns} | {plain.text_bytes / 1024:.1f} | {plain.bytes_in_redis / 1024:.1f} | "
            f"{packed.bytes_in_redis / 1024:.1f} | "
            f"{plain.bytes_in_redis / packed.bytes_in_redis:.2f}x |"
        )
    return lines


def imported_history(turns: int) -> list[pb.Turn]:
    """``turns`` finished turns of chat text, as ImportSession takes them."""
    now = timestamp_pb2.Timestamp()
    now.GetCurrentTime()
    return [
        pb.Turn(
            index=i,
            status=pb.TURN_STATUS_COMPLETED,
            input=question,
            output=reply,
            create_time=now,
            complete_time=now,
        )
        for i, (question, reply) in enumerate(conversation(turns), 1)
    ]


async def turn_latency(stub: Stub, *, early: int, late: int, samples: int) -> tuple[float, float]:
    """p50 of Run at turn ``early`` of fresh sessions against turn ``late`` onwards of one.

    Both histories are imported (``late - 1`` turns take one call, not minutes of Runs);
    the server must not compact, so the long history really is there and only the
    context window bounds what a Run reads. Measured alternately, so that drift in the
    machine's speed weighs on both alike.
    """
    user = "long-conversation"
    long_history = imported_history(late - 1)
    await stub.ImportSession(
        pb.ImportSessionRequest(
            snapshot=pb.SessionSnapshot(
                session_id="long", user_id=user, agent_id="echo", turns=long_history
            )
        )
    )
    early_history = long_history[: early - 1]
    early_ms: list[float] = []
    late_ms: list[float] = []
    for i in range(samples):
        fresh = f"fresh-{i}"
        await stub.ImportSession(
            pb.ImportSessionRequest(
                snapshot=pb.SessionSnapshot(
                    session_id=fresh, user_id=user, agent_id="echo", turns=early_history
                )
            )
        )
        started = time.perf_counter()
        await run_once(stub, fresh, user)
        early_ms.append(time.perf_counter() - started)
        started = time.perf_counter()
        await run_once(stub, "long", user)
        late_ms.append(time.perf_counter() - started)
    return statistics.median(early_ms) * 1000, statistics.median(late_ms) * 1000
