"""A long conversation stays small: 10,000 turns on a real Redis within a memory budget."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from agent_sessions.agents import AgentRegistry
from agent_sessions.config import Settings
from agent_sessions.sessions import RunCompleted, SessionManager
from agent_sessions.store.redis import RedisSessionStore
from launchers.redis_server import RedisServer

TURNS = 10_000
# The history's turns are also kept as items (the user's message and the reply of each
# Run), which roughly doubles what the unfolded history costs: 132 KB peak measured,
# 51 KB before items. Keeping a Run's text once is for the performance work (issue 16).
BUDGET_BYTES = 192 * 1024
# The session's event log (for watchers) holds its newest 1,000 events, here about 330
# turns' worth (a run's start, its deltas, its commit): 660 KB measured, flat once full.
LOG_BUDGET_BYTES = 768 * 1024
POLICY = Settings.model_validate(
    {
        "context_turns": 20,
        "keep_last_turns": 20,
        "max_history_turns": 100,
        "max_summary_bytes": 4 * 1024,
    }
).policy()
QUESTION = "Turn {i}: what should I pack for three days in Shanghai if it rains? 请简短回答。"


@pytest.fixture
async def store(redis_server: RedisServer, key_prefix: str) -> AsyncIterator[RedisSessionStore]:
    made = RedisSessionStore.from_url(redis_server.url, prefix=key_prefix)
    yield made
    await made.close()


async def session_memory(redis_server: RedisServer, key_prefix: str) -> tuple[int, int]:
    """What Redis holds for the session: MEMORY USAGE of its keys, added up, less its event
    log; and that of its event log."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*:s:*")]
        sizes = {key: await client.memory_usage(key, samples=0) or 0 for key in keys}
    finally:
        await client.aclose()
    log = sum(size for key, size in sizes.items() if key.endswith(b":events"))
    return sum(sizes.values()) - log, log


# 20,000 store calls: 35-65 s on these shared 2-vCPU machines, over the suite's 60 s
# default when the machine is busy. What it asserts is memory, not time.
@pytest.mark.timeout(300)
async def test_a_10000_turn_session_stays_within_its_memory_budget(
    store: RedisSessionStore, redis_server: RedisServer, key_prefix: str
) -> None:
    manager = SessionManager(store, AgentRegistry(), POLICY)
    session = await manager.create(user_id="traveller", agent_id="echo")
    peak = 0
    logs: list[int] = []
    last = None
    for i in range(1, TURNS + 1):
        async for event in manager.run(
            user_id="traveller",
            session_id=session.session_id,
            text=QUESTION.format(i=i),
            request_id=f"req-{i}",
        ):
            if isinstance(event, RunCompleted):
                last = event
        if i % 1_000 == 0:
            await manager.settle(5)
            history, log = await session_memory(redis_server, key_prefix)
            peak = max(peak, history)
            logs.append(log)

    assert last is not None
    assert last.turn.index == TURNS
    after = await manager.get(user_id="traveller", session_id=session.session_id)
    assert after.turn_count == TURNS
    assert after.total_turns - after.folded_turns <= POLICY.max_history_turns
    assert len(after.summary.encode()) <= POLICY.max_summary_bytes
    print(f"\n{TURNS} turns: peak {peak} bytes in Redis (budget {BUDGET_BYTES})")
    print(f"event log every 1,000 turns: {logs} bytes (budget {LOG_BUDGET_BYTES})")
    assert peak <= BUDGET_BYTES
    assert max(logs) <= LOG_BUDGET_BYTES
    assert logs[-1] <= logs[len(logs) // 2] * 1.1  # flat once the window is full
