"""`make soak`: mixed traffic against two servers on Sentinel-managed Redis, with a fault
every minute (issue 17).

A primary, two replicas and three sentinels (``launchers.redis_sentinel``) and two
``session-server`` processes on them (``--redis-min-replicas 1`` unless
``--no-min-replicas``), started as ``make bench`` starts its servers, with the echo
agent and a slow one (turns of 0.3 s, for faults to land in). A few clients
(``--clients``, 4) hold conversations, alternating between the servers call by call:
create, run turns, list, get, update, compress, end, delete, and short-lived sessions
that expire. Every call that fails UNAVAILABLE, ABORTED or DEADLINE_EXCEEDED is
retried on the other server (a Run with the same request id, so that a retry attaches
to or replays the first try rather than running the turn again).

A fault every minute, half a minute in: SIGKILL of the Redis primary, of a replica, of
a server, in turn. What was killed comes back 10 seconds later: a Redis as a replica of
the current primary, a server at the same address. Always the same server (B) is
killed, so that A lives the whole soak and its RSS says whether the server leaks.

Every ``--interval`` seconds a line: calls/s, Runs/s, the echo agent's Run p50/p99 and
the slowest Run (from the call to its RunCompleted, retries included), retries and
errors, each server's RSS, the primary's ``used_memory``, and the keys under the soak's
prefix without a TTL (must be 0). At the end, a summary with the memory trend over the
second half.

A turn is *acknowledged* once its client received RunCompleted. Each conversation, once
done, is checked 20 seconds later (by then a write is on the replicas, or a primary
kill took it), and what the clients stopped in the middle of is checked at the end,
after the last fault healed: its turns are read (ListTurns, every page, archived turns
too) and an acknowledged request id without a COMPLETED turn is *lost*, one with more
than one *duplicated*. Checking as the soak goes, rather than all at the end, lets
sessions be deleted and expire after their check, so that memory can level off.

Exits 1 if a key without a TTL was found, or (with ``--redis-min-replicas 1``) an
acknowledged turn was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import grpc
import redis
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import duration_pb2, field_mask_pb2

from bench.__main__ import ROOT, Server, session_server_command, started
from bench.load import TEXT, percentile
from bench.stub import Stub
from bench.watch import Launcher
from launchers.redis_sentinel import LocalSentinelGroup
from launchers.redis_server import free_port

KEY_PREFIX = "soak:"
"""The servers' ``--key-prefix``: the no-TTL scan looks at these keys only."""

FAULT_EVERY_S = 60.0
FIRST_FAULT_S = 30.0
"""Faults fall mid-minute, so that a run of whole minutes ends on a healed system."""
DOWN_S = 10.0
"""How long what a fault killed stays down before it is restarted."""
HEAL_BUDGET_S = 30.0
"""No fault is injected this close to the end: it could not heal before the checks."""
SETTLE_S = 20.0
"""A finished conversation is checked this long after its last write: by then the write
is on the replicas, or a primary kill lost it (replication lags by milliseconds)."""

SLOW_AGENT = "slow"
AGENTS = {
    SLOW_AGENT: {
        "kind": "plugin",
        "object": "bench.ticking_agent:TickingAgent",
        "options": {"count": 10, "interval_ms": 30},
    }
}
"""Beside the echo agent (instant), one whose turns take about 0.3 s: turns that a fault
interrupts, a server killed in the middle of one, a commit after a failover."""
SLOW_SHARE = 0.5
"""The share of conversations with the slow agent."""

SESSION_LIFETIME_S = 300
"""Conversations' ttl and idle timeout: long enough to be checked before they expire,
short enough that the sessions alive (and Redis's memory) level off after it."""
EPHEMERAL_TTL_S = 8
"""The ttl of the sessions made to expire during the soak."""
EPHEMERAL_SHARE = 0.15
USERS_PER_CLIENT = 4
"""Each client's users come back again and again, as real ones do: their session
indexes must not grow with the sessions that ended or expired."""
PAUSE_S = (0.03, 0.08)
"""A client's think time between calls (uniform): a steady load, not a flood."""
ATTEMPT_TIMEOUT_S = 15.0
"""The deadline of one try: longer than the turn lease (10 s), which a retry may wait out
when the server that ran its turn was killed."""
RETRY_CAP_S = 120.0
"""A call still failing after this long gives up (a turn given up on is not acknowledged)."""
SLOW_CALL_S = 3.0
"""A call that took longer is printed, with its failed tries."""
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED}
)
CHANNEL_OPTIONS = [
    # gRPC's reconnect backoff grows to 2 minutes while a server is down; cap it, so
    # that the restarted server gets its share of the calls again within a second.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
FLAT_PCT = 10.0
"""Memory is flat when its fitted change over the second half is within this share."""

Fate = Literal["delete", "end", "expire"]
"""What becomes of a conversation once done: deleted (after its check), ended, or left
to expire at its idle timeout."""
FATES: tuple[Fate, ...] = ("delete", "end", "expire")
FATE_WEIGHTS = (0.4, 0.3, 0.3)

T = TypeVar("T")


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:2d}:{rest:02d}"


def say(line: str) -> None:
    print(line, flush=True)


# What the clients saw


@dataclass
class Window:
    """What the clients did since the last line."""

    since: float = field(default_factory=time.monotonic)
    calls: int = 0
    runs: int = 0
    echo_latencies: list[float] = field(default_factory=list)
    """Of the echo agent's Runs: the service's own latency (the slow agent's is its own)."""
    slowest: float = 0.0
    """The longest Run, of either agent: what a fault cost the worst-hit caller."""
    retries: int = 0
    errors: int = 0


@dataclass
class Stats:
    window: Window = field(default_factory=Window)
    calls: Counter[str] = field(default_factory=Counter)
    run_latencies: dict[str, list[float]] = field(default_factory=dict)
    """Acknowledged Runs' latencies (from the call to RunCompleted, retries included), by
    agent."""
    retries: Counter[str] = field(default_factory=Counter)
    """Tries that failed with a retryable code, by code."""
    errors: list[str] = field(default_factory=list)
    """Calls that failed for good (a code not retried, or retried past the cap)."""
    replays: int = 0
    """Runs whose retry found the turn completed and replayed it."""
    slow_calls: int = 0
    recovery_from: float | None = None
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    recovered_at: float = 0.0

    def call(self, method: str) -> None:
        self.calls[method] += 1
        self.window.calls += 1

    def acknowledged(self, agent: str, latency: float, try_began: float) -> None:
        self.run_latencies.setdefault(agent, []).append(latency)
        self.window.runs += 1
        self.window.slowest = max(self.window.slowest, latency)
        if agent == "echo":
            self.window.echo_latencies.append(latency)
        # The first Run tried after a kill and acknowledged tells when the service was
        # back; Runs tried before it and finished after do not.
        if self.recovery_from is not None and try_began >= self.recovery_from:
            self.recovery_from = None
            self.recovered_at = time.monotonic()
            self.recovered.set()

    def watch_recovery(self, since: float) -> None:
        self.recovered.clear()
        self.recovery_from = since

    def retry(self, code: grpc.StatusCode) -> None:
        self.retries[code.name] += 1
        self.window.retries += 1

    def slow_call(self, what: str) -> None:
        self.slow_calls += 1
        if self.slow_calls <= 20:
            say(f"        slow call: {what}")

    def error(self, what: str) -> None:
        self.errors.append(what)
        self.window.errors += 1
        if len(self.errors) <= 10:  # the first ones say what went wrong; the rest count
            say(f"        error: {what}")

    def take_window(self) -> Window:
        window, self.window = self.window, Window()
        return window


@dataclass(eq=False)
class Tracked:
    """A conversation whose acknowledged turns are checked."""

    session_id: str
    user_id: str
    acknowledged: list[str] = field(default_factory=list)
    """The request ids of its turns whose RunCompleted the client received."""
    fate: Fate = "expire"


@dataclass
class Ledger:
    """The conversations to check, and what the checks found."""

    settling: list[tuple[float, Tracked]] = field(default_factory=list)
    """Done conversations and when they may be checked."""
    checked: int = 0
    turns: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    sessions_lost: list[str] = field(default_factory=list)
    """Sessions whose create was acknowledged, NOT_FOUND at their check."""
    deleted: list[tuple[str, str]] = field(default_factory=list)
    expiring: list[tuple[float, str, str]] = field(default_factory=list)
    """Short-lived sessions and when they are gone for sure."""

    def retire(self, tracked: Tracked) -> None:
        self.settling.append((time.monotonic() + SETTLE_S, tracked))

    def settled(self, now: float) -> list[Tracked]:
        ready = [tracked for at, tracked in self.settling if at <= now]
        self.settling = [(at, tracked) for at, tracked in self.settling if at > now]
        return ready


class Refused(Exception):
    """A call failed for good."""

    def __init__(self, method: str, code: grpc.StatusCode | None, details: str, tries: int):
        super().__init__(f"{method}: {code.name if code else 'no completion'} {details}")
        self.code = code
        self.tries = tries


# The clients


class Client:
    """One caller, one call at a time, alternating between the servers call by call."""

    def __init__(
        self,
        number: int,
        stubs: Sequence[Stub],
        stats: Stats,
        ledger: Ledger,
        stopping: asyncio.Event,
        seed: int,
    ) -> None:
        self.number = number
        self.stubs = stubs
        self.stats = stats
        self.ledger = ledger
        self.stopping = stopping
        """Set at the end of the soak: the client finishes the call it is in and stops."""
        self.random = random.Random(seed * 1000 + number)
        self.turn = 0
        self.made = 0

    def _next_stub(self) -> Stub:
        self.turn += 1
        return self.stubs[self.turn % len(self.stubs)]

    async def call(
        self, method: str, attempt: Callable[[Stub], Awaitable[T]], about: str = ""
    ) -> T:
        """``attempt`` on the next server, and again on the next on a retryable failure,
        with a growing pause, until it succeeds or :data:`RETRY_CAP_S` has passed. A call
        that took long says why (its failed tries), about ``about``."""
        began = time.monotonic()
        failed: Counter[str] = Counter()
        while True:
            try:
                result = await attempt(self._next_stub())
            except grpc.aio.AioRpcError as error:
                code = error.code()
                tries = failed.total() + 1
                if code not in RETRYABLE or time.monotonic() - began > RETRY_CAP_S:
                    raise Refused(method, code, error.details() or "", tries) from None
                self.stats.retry(code)
                failed[f"{code.name} ({_short(error.details() or '')})"] += 1
                await asyncio.sleep(min(0.05 * 2**tries, 1.0) * self.random.uniform(0.5, 1.0))
                continue
            self.stats.call(method)
            took = time.monotonic() - began
            if took > SLOW_CALL_S:
                why = ", ".join(f"{n} x {what}" for what, n in failed.items()) or "none"
                self.stats.slow_call(f"{method} {about} took {took:.1f} s; failed tries: {why}")
            return result

    async def think(self) -> None:
        await asyncio.sleep(self.random.uniform(*PAUSE_S))

    async def create(
        self, user_id: str, session_id: str, lifetime_s: int, agent_id: str = "echo"
    ) -> None:
        life = duration_pb2.Duration(seconds=lifetime_s)
        request = pb.CreateSessionRequest(
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            # With the session id ours, a retry of a create that went through returns it
            # instead of ALREADY_EXISTS.
            request_id=uuid.uuid4().hex,
            ttl=life,
            idle_timeout=life,
            labels={"soak": "yes"},
        )
        await self.call(
            "CreateSession", lambda stub: stub.CreateSession(request, timeout=ATTEMPT_TIMEOUT_S)
        )

    async def run(self, user_id: str, session_id: str, agent: str) -> str:
        """One turn, to its RunCompleted; returns its request id."""
        request = pb.RunRequest(
            session_id=session_id, user_id=user_id, input=TEXT, request_id=uuid.uuid4().hex
        )
        began = time.monotonic()
        try_began = began

        async def attempt(stub: Stub) -> pb.Turn:
            nonlocal try_began
            try_began = time.monotonic()
            completed: pb.Turn | None = None
            async for event in stub.Run(request, timeout=ATTEMPT_TIMEOUT_S):
                if event.HasField("started") and event.started.replayed:
                    self.stats.replays += 1
                if event.HasField("completed"):
                    completed = event.completed.turn
            if completed is None:
                raise Refused("Run", None, "the stream ended without RunCompleted", 1)
            return completed

        turn = await self.call("Run", attempt, f"of {session_id} ({agent} agent)")
        if turn.status != pb.TURN_STATUS_COMPLETED or turn.request_id != request.request_id:
            raise Refused("Run", None, f"completed turn {turn.index} is not ours: {turn}", 1)
        self.stats.acknowledged(agent, time.monotonic() - began, try_began)
        return request.request_id

    async def conversation(self) -> None:
        """A session with a few turns and the calls around them; then it is ended,
        deleted or left to expire, and checked once settled."""
        self.made += 1
        user_id = f"soak-{self.number}-{self.made % USERS_PER_CLIENT}"
        tracked = Tracked(f"c{self.number}-{self.made}", user_id)
        ids = {"session_id": tracked.session_id, "user_id": user_id}
        agent = SLOW_AGENT if self.random.random() < SLOW_SHARE else "echo"
        await self.create(user_id, tracked.session_id, SESSION_LIFETIME_S, agent)
        try:
            turns = self.random.randint(3, 12)
            for number in range(1, turns + 1):
                if self.stopping.is_set():
                    return
                await self.think()
                tracked.acknowledged.append(await self.run(user_id, tracked.session_id, agent))
                await self.think()
                await self.between_turns(ids, number, turns)
            tracked.fate = self.random.choices(FATES, FATE_WEIGHTS)[0]
            if tracked.fate == "end":
                await self.call(
                    "EndSession",
                    lambda stub: stub.EndSession(
                        pb.EndSessionRequest(**ids), timeout=ATTEMPT_TIMEOUT_S
                    ),
                )
        except Refused as refused:
            self.stats.error(f"client {self.number}, session {tracked.session_id}: {refused}")
        finally:
            self.ledger.retire(tracked)

    async def between_turns(self, ids: dict[str, str], number: int, turns: int) -> None:
        """Some of the calls an application makes around a conversation's turns."""
        if number == 2:
            state = pb.Session(
                session_id=ids["session_id"],
                user_id=ids["user_id"],
                state_json=f'{{"topic": "soak", "turns": {turns}, "user:lang": "en"}}',
            )
            mask = field_mask_pb2.FieldMask(paths=["state_json"])
            await self.call(
                "UpdateSession",
                lambda stub: stub.UpdateSession(
                    pb.UpdateSessionRequest(session=state, update_mask=mask),
                    timeout=ATTEMPT_TIMEOUT_S,
                ),
            )
        elif number == turns // 2 and turns >= 6:
            # Folded turns stay readable for the check: the servers archive them.
            await self.call(
                "CompressSession",
                lambda stub: stub.CompressSession(
                    pb.CompressSessionRequest(**ids, keep_last=2), timeout=ATTEMPT_TIMEOUT_S
                ),
            )
        elif self.random.random() < 0.3:
            await self.call(
                "ListSessions",
                lambda stub: stub.ListSessions(
                    pb.ListSessionsRequest(user_id=ids["user_id"], page_size=20),
                    timeout=ATTEMPT_TIMEOUT_S,
                ),
            )
        elif self.random.random() < 0.3:
            await self.call(
                "GetSession",
                lambda stub: stub.GetSession(
                    pb.GetSessionRequest(**ids), timeout=ATTEMPT_TIMEOUT_S
                ),
            )

    async def ephemeral(self) -> None:
        """A session made to expire: one turn, then nothing until its ttl runs out."""
        self.made += 1
        user_id = f"soak-{self.number}-{self.made % USERS_PER_CLIENT}"
        session_id = f"e{self.number}-{self.made}"
        await self.create(user_id, session_id, EPHEMERAL_TTL_S)
        gone_at = time.monotonic() + EPHEMERAL_TTL_S + 1
        try:
            await self.run(user_id, session_id, "echo")
        except Refused as refused:
            # Retries across a failover may outlast its few seconds: then it is gone.
            if refused.code != grpc.StatusCode.NOT_FOUND:
                raise
        self.ledger.expiring.append((gone_at, user_id, session_id))

    async def traffic(self) -> None:
        while not self.stopping.is_set():
            try:
                if self.random.random() < EPHEMERAL_SHARE:
                    await self.ephemeral()
                else:
                    await self.conversation()
            except Refused as refused:
                self.stats.error(f"client {self.number}: {refused}")
            await self.think()

    # The checks

    async def check(self, tracked: Tracked) -> None:
        """Reads the conversation's turns and counts its lost and duplicated ones; then
        deletes it if that is its fate."""
        ids = {"session_id": tracked.session_id, "user_id": tracked.user_id}
        completed: Counter[str] = Counter()
        token = ""
        found = True
        try:
            while True:
                page = await self.turns_page(tracked, token)
                completed.update(
                    t.request_id for t in page.turns if t.status == pb.TURN_STATUS_COMPLETED
                )
                token = page.next_page_token
                if not token:
                    break
        except Refused as refused:
            if refused.code != grpc.StatusCode.NOT_FOUND:
                self.stats.error(f"check of {tracked.session_id}: {refused}")
                return
            self.ledger.sessions_lost.append(tracked.session_id)
            found = False
        self.ledger.checked += 1
        self.ledger.turns += len(tracked.acknowledged)
        self.ledger.lost += [
            f"{tracked.session_id}/{request_id}"
            for request_id in tracked.acknowledged
            if not completed[request_id]
        ]
        # Any request id run twice, acknowledged or not (a Run given up on, say).
        self.ledger.duplicated += [
            f"{tracked.session_id}/{request_id} ({count} turns)"
            for request_id, count in completed.items()
            if request_id and count > 1
        ]
        if tracked.fate == "delete" and found:
            await self.delete(ids)

    async def turns_page(self, tracked: Tracked, token: str) -> pb.ListTurnsResponse:
        """A page of the conversation's turns, archived (folded) ones included."""
        request = pb.ListTurnsRequest(
            session_id=tracked.session_id,
            user_id=tracked.user_id,
            page_size=1000,
            page_token=token,
            include_archived=True,
        )
        return await self.call(
            "ListTurns", lambda stub: stub.ListTurns(request, timeout=ATTEMPT_TIMEOUT_S)
        )

    async def delete(self, ids: dict[str, str]) -> None:
        try:
            await self.call(
                "DeleteSession",
                lambda stub: stub.DeleteSession(
                    pb.DeleteSessionRequest(**ids), timeout=ATTEMPT_TIMEOUT_S
                ),
            )
        except Refused as refused:
            # A retry of a delete that went through finds nothing: that is success.
            if refused.code != grpc.StatusCode.NOT_FOUND or refused.tries == 1:
                self.stats.error(f"delete of {ids['session_id']}: {refused}")
                return
        self.ledger.deleted.append((ids["user_id"], ids["session_id"]))

    async def checking(self) -> None:
        """Checks each conversation once it has settled, until the soak stops."""
        while not self.stopping.is_set():
            for tracked in self.ledger.settled(time.monotonic()):
                await self.check(tracked)
            await asyncio.sleep(1)

    async def still_there(self, user_id: str, session_id: str) -> bool:
        try:
            await self.call(
                "GetSession",
                lambda stub: stub.GetSession(
                    pb.GetSessionRequest(session_id=session_id, user_id=user_id),
                    timeout=ATTEMPT_TIMEOUT_S,
                ),
            )
        except Refused as refused:
            if refused.code == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True


# The processes and the faults


class Servers:
    """The two session servers; B is the one the faults kill."""

    def __init__(self, stack: AsyncExitStack, store_url: str, extra: Sequence[str]) -> None:
        self.stack = stack
        self.store_url = store_url
        self.extra = extra
        self.addresses = [f"127.0.0.1:{free_port()}" for _ in "AB"]
        self.running: list[Server] = []

    async def start(self) -> None:
        commands = [(a, self.command(a), True) for a in self.addresses]
        self.running = list(await self.stack.enter_async_context(started(commands)))

    def command(self, address: str) -> list[str]:
        # As the watch bench starts its servers: the repository on the path, for the
        # plugin agent (bench.ticking_agent).
        launcher = Launcher(started, session_server_command)
        return launcher.server(ROOT, address, self.store_url, *self.extra)

    def kill(self, slot: int) -> int:
        pid = self.running[slot].pid
        os.kill(pid, signal.SIGKILL)
        return pid

    async def restart(self, slot: int) -> None:
        """Starts the server again at its address (the clients' channels reconnect);
        ``started`` stops it with the rest at the end."""
        address = self.addresses[slot]
        [server] = await self.stack.enter_async_context(
            started([(address, self.command(address), True)])
        )
        self.running[slot] = server


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Faults:
    """Kills the primary, a replica, server B in turn, and brings each back."""

    def __init__(
        self, group: LocalSentinelGroup, servers: Servers, stats: Stats, began: float
    ) -> None:
        self.group = group
        self.servers = servers
        self.stats = stats
        self.began = began
        self.injected = 0

    def now(self) -> str:
        """The soak's clock, for the lines that say what happened when."""
        return clock(time.monotonic() - self.began)

    async def inject(self, number: int, kind: str) -> None:
        self.injected += 1
        killed_at = time.monotonic()
        self.stats.watch_recovery(killed_at)
        if kind == "primary":
            old = await asyncio.to_thread(self.group.primary)
            await asyncio.to_thread(self.group.kill, old)
            say(f"{self.now()}  fault {number}: SIGKILL of the Redis primary :{old}")
            new = await asyncio.to_thread(self.group.wait_for_failover, old)
            say(
                f"{self.now()}    :{new} promoted "
                f"{time.monotonic() - killed_at:.1f} s after the kill"
            )
            await self.first_run(killed_at)
            await asyncio.sleep(max(0.0, killed_at + DOWN_S - time.monotonic()))
            await self.restart_redis(old)
        elif kind == "replica":
            port = (await asyncio.to_thread(self.group.replicas))[0]
            await asyncio.to_thread(self.group.kill, port)
            say(f"{self.now()}  fault {number}: SIGKILL of the Redis replica :{port}")
            await self.first_run(killed_at)
            await asyncio.sleep(max(0.0, killed_at + DOWN_S - time.monotonic()))
            await self.restart_redis(port)
        else:
            pid = self.servers.kill(1)
            say(f"{self.now()}  fault {number}: SIGKILL of server B (pid {pid})")
            await self.first_run(killed_at)
            await asyncio.sleep(max(0.0, killed_at + DOWN_S - time.monotonic()))
            await self.servers.restart(1)
            say(f"{self.now()}    server B back (pid {self.servers.running[1].pid})")

    async def first_run(self, killed_at: float) -> None:
        try:
            await asyncio.wait_for(self.stats.recovered.wait(), DOWN_S * 3)
        except TimeoutError:
            say(f"{self.now()}    no Run acknowledged since the kill")
            return
        say(
            f"{self.now()}    first Run tried after the kill acknowledged "
            f"{self.stats.recovered_at - killed_at:.2f} s after it"
        )

    async def restart_redis(self, port: int) -> None:
        await asyncio.to_thread(self.group.restart, port)
        restarted = time.monotonic()
        await asyncio.to_thread(self.group.wait_for_replicas)
        primary = await asyncio.to_thread(self.group.primary)
        say(
            f"{self.now()}    :{port} back as a replica of :{primary}, in sync "
            f"{time.monotonic() - restarted:.1f} s later"
        )

    async def schedule(self, duration: float) -> None:
        kinds = ("primary", "replica", "server")
        number = 0
        at = FIRST_FAULT_S
        while at + HEAL_BUDGET_S <= duration:
            await asyncio.sleep(max(0.0, self.began + at - time.monotonic()))
            await self.inject(number + 1, kinds[number % len(kinds)])
            number += 1
            at += FAULT_EVERY_S


# Sampling


@dataclass(frozen=True)
class Sample:
    at: float
    rss: tuple[float | None, ...]
    used_memory: int | None
    no_ttl: int | None


def redis_sample(group: LocalSentinelGroup) -> tuple[int | None, list[str] | None]:
    """The primary's ``used_memory`` and its keys under the prefix without a TTL (None
    each while no primary answers, in a failover)."""
    try:
        port = group.primary()
    except LookupError:
        return None, None
    node = group.client(port)
    try:
        used = int(node.info("memory")["used_memory"])
        suspects = _keys_without_ttl(node, list(node.scan_iter(match=KEY_PREFIX + "*", count=1000)))
        if suspects:
            # A script writes a key and its expiry at once, but a key written by two
            # commands has no TTL in between: only one still without a second later counts.
            time.sleep(1)
            suspects = _keys_without_ttl(node, suspects)
        if suspects:
            say(f"        keys without a TTL: {', '.join(suspects[:5])}")
        return used, suspects
    except redis.RedisError:
        return None, None
    finally:
        node.close()


def _keys_without_ttl(node: redis.Redis, keys: list[str]) -> list[str]:
    found: list[str] = []
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        pipe = node.pipeline(transaction=False)
        for key in batch:
            pipe.ttl(key)
        found += [key for key, ttl in zip(batch, pipe.execute(), strict=True) if ttl == -1]
    return found


HEADER = (
    " time  calls/s  Runs/s  echo p50 ms  echo p99 ms  slowest Run s  retries  errors"
    "  RSS A MB  RSS B MB  used_memory MB  keys without TTL"
)


async def sampling(
    group: LocalSentinelGroup,
    servers: Servers,
    stats: Stats,
    samples: list[Sample],
    began: float,
    interval: float,
    stopping: asyncio.Event,
) -> None:
    """A line every ``interval`` seconds from ``began``, on the clock (a line that took
    long, Redis unreachable in a failover, does not shift the next ones), and a last one
    when the soak stops."""
    ticks = 0
    while not stopping.is_set():
        ticks += 1
        with contextlib.suppress(TimeoutError):
            next_line = began + ticks * interval - time.monotonic()
            await asyncio.wait_for(stopping.wait(), max(0.0, next_line))
        samples.append(await sample_line(group, servers, stats, began))


async def sample_line(
    group: LocalSentinelGroup, servers: Servers, stats: Stats, began: float
) -> Sample:
    """Prints the processes' memory now, and what the clients did since the last line."""
    # Redis first: in a failover it takes a while to say nothing answers, and the line
    # then covers the clients until it is printed, in its place among the fault lines.
    used, suspects = await asyncio.to_thread(redis_sample, group)
    rss = tuple(rss_mb(server.pid) for server in servers.running)
    window = stats.take_window()
    now = time.monotonic()
    at, elapsed = now - began, max(now - window.since, 1e-9)
    p50, p99 = (percentile(window.echo_latencies, p) * 1000 for p in (50, 99))
    say(
        f"{clock(at)}  {window.calls / elapsed:7.1f}  {window.runs / elapsed:6.1f}"
        f"  {p50:11.1f}  {p99:11.1f}  {window.slowest:13.2f}"
        f"  {window.retries:7d}  {window.errors:6d}"
        + "".join(f"  {_or_dash(mb, 8)}" for mb in rss)
        + f"  {_or_dash(None if used is None else used / 2**20, 14, 2)}"
        + f"  {_or_dash(None if suspects is None else len(suspects), 16, 0)}"
    )
    return Sample(at, rss, used, None if suspects is None else len(suspects))


def _or_dash(value: float | None, width: int, digits: int = 1) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def trend(label: str, points: Sequence[tuple[float, float]], unit: str, steady: bool) -> str:
    """The least-squares change of ``points`` (seconds, value) over their span, in
    ``unit`` per minute and as a share of their mean; judged flat or growing only if the
    points are ``steady`` (past the warm-up)."""
    if len(points) < 3:
        return f"  {label}: too few samples in the second half"
    times = [t for t, _ in points]
    values = [v for _, v in points]
    slope, _ = statistics.linear_regression(times, values)
    change = slope * (times[-1] - times[0])
    share = change / statistics.fmean(values) * 100
    verdict = ("flat" if abs(share) <= FLAT_PCT else "GROWING") if steady else "not judged"
    return (
        f"  {label}: {values[0]:.2f} {unit} at {clock(times[0]).strip()}, {values[-1]:.2f} {unit} "
        f"at {clock(times[-1]).strip()}; fitted slope {slope * 60:+.3f} {unit}/min, "
        f"{share:+.1f}% over the second half ({verdict})"
    )


# The soak


async def soak(args: argparse.Namespace) -> int:
    duration = args.minutes * 60
    min_replicas = not args.no_min_replicas
    group = LocalSentinelGroup(replicas=2, sentinels=3, down_after_ms=1000)
    await asyncio.to_thread(group.start)
    stats = Stats()
    ledger = Ledger()
    samples: list[Sample] = []
    try:
        extra = ["--key-prefix", KEY_PREFIX, "--archive-folded-turns", "yes"]
        extra += ["--agents", json.dumps(AGENTS)]
        if min_replicas:
            extra += ["--redis-min-replicas", "1"]
        async with AsyncExitStack() as stack:
            servers = Servers(stack, group.url(), extra)
            await servers.start()
            channels = [
                grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
                for address in servers.addresses
            ]
            for channel in channels:
                stack.push_async_callback(channel.close, None)
            stubs = [Stub(channel) for channel in channels]
            say(
                f"soak: {args.minutes:g} min, {args.clients} clients, a fault every "
                f"{FAULT_EVERY_S:.0f} s from {FIRST_FAULT_S:.0f} s (primary, replica, server "
                f"B in turn), {'--redis-min-replicas 1' if min_replicas else 'no min replicas'}"
            )
            say(
                f"redis: primary :{group.primary()}, replicas "
                + ", ".join(f":{p}" for p in group.replicas())
                + f"; servers A {servers.addresses[0]}, B {servers.addresses[1]}"
            )
            say(HEADER)
            stopping = asyncio.Event()
            clients = [
                Client(n, stubs, stats, ledger, stopping, args.seed) for n in range(args.clients)
            ]
            # The checks go through a client of their own, with the same retries.
            checker = Client(args.clients, stubs, stats, ledger, stopping, args.seed)
            began = time.monotonic()
            faults = Faults(group, servers, stats, began)
            tasks = [
                asyncio.create_task(
                    sampling(group, servers, stats, samples, began, args.interval, stopping)
                ),
                asyncio.create_task(faults.schedule(duration)),
                asyncio.create_task(checker.checking()),
                *(asyncio.create_task(client.traffic()) for client in clients),
            ]
            try:
                await asyncio.sleep(duration)
                stopping.set()
                # They end by themselves: the sampler after a last line, the faults once
                # healed, the clients after their call in flight.
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            # The last fault has healed: check what is left, and what must be gone.
            for _, tracked in ledger.settling:
                await checker.check(tracked)
            back_deleted = [s for u, s in ledger.deleted if await checker.still_there(u, s)]
            back_expired = [
                s
                for at, u, s in ledger.expiring
                if at <= time.monotonic() and await checker.still_there(u, s)
            ]
            return summary(
                args, stats, ledger, samples, faults, back_deleted, back_expired, min_replicas
            )
    finally:
        await asyncio.to_thread(group.stop)


def summary(
    args: argparse.Namespace,
    stats: Stats,
    ledger: Ledger,
    samples: list[Sample],
    faults: Faults,
    back_deleted: list[str],
    back_expired: list[str],
    min_replicas: bool,
) -> int:
    duration = args.minutes * 60
    calls = sum(stats.calls.values())
    say("")
    plural = "" if faults.injected == 1 else "s"
    say(f"summary ({args.minutes:g} min, {faults.injected} fault{plural})")
    say(
        f"  calls: {calls:,} ({calls / duration:.1f}/s): "
        + ", ".join(f"{m} {n:,}" for m, n in stats.calls.most_common())
    )
    for agent, latencies in sorted(stats.run_latencies.items()):
        say(
            f"  Runs acknowledged, {agent} agent: {len(latencies):,}; p50 "
            f"{percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f}"
            f" ms, slowest {max(latencies):.2f} s"
        )
    retries = ", ".join(f"{code} {n}" for code, n in stats.retries.most_common()) or "none"
    say(
        f"  tries retried: {retries}; Runs replayed by a retry: {stats.replays}; calls slower "
        f"than {SLOW_CALL_S:g} s: {stats.slow_calls}; calls failed for good: {len(stats.errors)}"
    )
    lost_label = "must be 0" if min_replicas else "no min replicas: the figure is the point"
    say(
        f"  conversations checked: {ledger.checked:,}, acknowledged turns {ledger.turns:,}: "
        f"lost {len(ledger.lost)}, duplicated {len(ledger.duplicated)} ({lost_label})"
    )
    for what, found in (("lost", ledger.lost), ("duplicated", ledger.duplicated)):
        if found:
            say(f"    {what}: {', '.join(found[:10])}")
    say(
        f"  sessions NOT_FOUND at their check: {len(ledger.sessions_lost)}"
        + (f" ({', '.join(ledger.sessions_lost[:10])})" if ledger.sessions_lost else "")
    )
    say(
        f"  deleted sessions readable at the end: {len(back_deleted)} of {len(ledger.deleted)}; "
        f"expired ones: {len(back_expired)} of {len(ledger.expiring)}"
    )
    no_ttl = max((s.no_ttl for s in samples if s.no_ttl is not None), default=0)
    say(f"  keys without a TTL, most at any sample: {no_ttl} (must be 0)")
    half = [s for s in samples if s.at >= duration / 2]
    # Sessions live SESSION_LIFETIME_S: only after it do as many expire as are made.
    steady = duration / 2 >= SESSION_LIFETIME_S + SETTLE_S
    say(f"  memory trend over the second half ({clock(duration / 2).strip()} on):")
    for line in (
        trend(
            "server A RSS (never killed)",
            [(s.at, s.rss[0]) for s in half if s.rss[0] is not None],
            "MB",
            steady,
        ),
        trend(
            "Redis used_memory (the primary of the time)",
            [(s.at, s.used_memory / 2**20) for s in half if s.used_memory is not None],
            "MB",
            steady,
        ),
    ):
        say(line)
    if not steady:
        say(
            f"    (not judged: the second half starts before the sessions' "
            f"{SESSION_LIFETIME_S // 60} min lifetime has passed, so memory is still filling;"
            " judge a run of 11 minutes or more)"
        )
    failures = []
    if no_ttl:
        failures.append(f"{no_ttl} keys without a TTL")
    if min_replicas and (ledger.lost or ledger.duplicated):
        failures.append(
            f"{len(ledger.lost)} acknowledged turns lost, {len(ledger.duplicated)} duplicated"
        )
    say("FAIL: " + "; ".join(failures) if failures else "PASS")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="make soak", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30, help="how long (30)")
    parser.add_argument(
        "--no-min-replicas",
        action="store_true",
        help="servers without --redis-min-replicas 1: acknowledged turns a failover\n"
        "loses are counted, not failed on",
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--interval", type=float, default=30, help="seconds between lines (30)")
    parser.add_argument("--seed", type=int, default=17, help="of the clients' choices (17)")
    args = parser.parse_args()
    if args.minutes <= 0 or args.clients < 1 or args.interval <= 0:
        parser.error("--minutes, --clients and --interval must be positive")
    try:
        sys.exit(asyncio.run(soak(args)))
    except KeyboardInterrupt:  # the processes are stopped by then: no traceback to read
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
