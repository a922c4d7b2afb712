"""Acknowledged turns through a Redis failover: clients run turns with request ids,
retrying each until it is acknowledged, while the primary (or a cluster master) is
killed and a replica takes over.

With --redis-min-replicas 1 no acknowledged turn is lost and none is done twice. Without
it the test only reports how many were lost (replication is asynchronous: that figure
may be 0 or more). Each test prints its figures on a line starting with FAILOVER
(``pytest -s tests/test_failover.py``).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb

from agent_sessions.store.redis.keys import KeySpace
from launchers.redis_cluster import LocalCluster
from launchers.redis_sentinel import LocalSentinelGroup
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, serving

# redis-py's cluster client drops the node objects of a dead master without closing
# their connections (the peer closed them): garbage-collected, they warn ResourceWarning.
# Each test collects its garbage before it ends, so the warnings stay in this module.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

CLIENTS = 6
AFTER_RECOVERY_S = 2.0
"""How long the clients go on once the first Run after the kill has succeeded."""


@dataclass
class Ledger:
    """What the clients saw: the turns acknowledged to them, and the errors on the way."""

    acknowledged: set[tuple[str, str]] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    killed_at: float | None = None
    first_success_after_kill: float | None = None
    affected: set[str] = field(default_factory=set)
    """The sessions whose primary is killed: the recovery time is theirs."""

    def succeeded(self, session_id: str, request_id: str, started_at: float) -> None:
        self.acknowledged.add((session_id, request_id))
        # A Run sent before the kill may be answered after it.
        killed = self.killed_at is not None and started_at > self.killed_at
        killed = killed and session_id in self.affected
        if killed and self.first_success_after_kill is None:
            self.first_success_after_kill = time.monotonic()


@dataclass
class Outcome:
    acknowledged: int
    lost: int
    duplicated: int
    recovery_s: float
    errors: Counter[str]

    def report(self, topology: str, min_replicas: int) -> None:
        errors = ", ".join(f"{code} {count}" for code, count in sorted(self.errors.items()))
        print(
            f"\nFAILOVER {topology} --redis-min-replicas {min_replicas}: "
            f"{self.acknowledged} turns acknowledged, {self.lost} lost, "
            f"{self.duplicated} duplicated; kill -> first successful Run "
            f"{self.recovery_s:.2f} s; errors the clients saw: {errors or 'none'}"
        )


@pytest.mark.parametrize("min_replicas", [1, 0])
async def test_a_sentinel_failover_under_load(key_prefix: str, min_replicas: int) -> None:
    group = LocalSentinelGroup(replicas=2, sentinels=3, down_after_ms=1000)
    group.start()
    try:
        outcome = await failover_under_load(
            group.url(), key_prefix, min_replicas, kill=lambda: group.kill(group.primary())
        )
    finally:
        group.stop()
        gc.collect()
    outcome.report("Sentinel (primary, 2 replicas, 3 sentinels)", min_replicas)
    assert outcome.duplicated == 0
    if min_replicas:
        assert outcome.lost == 0


@pytest.mark.parametrize("min_replicas", [1, 0])
async def test_a_cluster_master_failover_under_load(key_prefix: str, min_replicas: int) -> None:
    cluster = LocalCluster(replicas=1, node_timeout_ms=1000)
    cluster.start()
    key = KeySpace(key_prefix).user("user-0").index
    master = cluster.owner(key)

    def rejoin_once_replaced() -> None:
        # Its replica, now a master, has no replica of its own to confirm writes until
        # the dead node returns (as an orchestrator would restart it): as one.
        while cluster.owner(key) == master:
            time.sleep(0.05)
        cluster.restart(master)

    try:
        outcome = await failover_under_load(
            cluster.url,
            key_prefix,
            min_replicas,
            kill=lambda: cluster.kill(master),
            heal=rejoin_once_replaced,
            affected=lambda user_id: (
                cluster.owner(KeySpace(key_prefix).user(user_id).index) == master
            ),
        )
    finally:
        cluster.stop()
        gc.collect()
    outcome.report("Cluster (3 masters, 1 replica each)", min_replicas)
    assert outcome.duplicated == 0
    if min_replicas:
        assert outcome.lost == 0


async def failover_under_load(
    url: str,
    key_prefix: str,
    min_replicas: int,
    kill: Callable[[], None],
    heal: Callable[[], None] | None = None,
    affected: Callable[[str], bool] = lambda user_id: True,
) -> Outcome:
    """Runs CLIENTS clients (one session each, users spread over the slots), kills the
    primary after a second (then ``heal``s, beside the load), and stops them once Runs
    succeed again; then counts."""
    settings = server_settings(
        url,
        key_prefix,
        redis_min_replicas=min_replicas,
        redis_replica_timeout=timedelta(milliseconds=500),
        redis_timeout=timedelta(seconds=2),
        turn_lease=timedelta(seconds=2),
        # Long sessions are compressed as they run: their old turns stay countable.
        archive_folded_turns=True,
    )
    ledger = Ledger()
    async with serving(settings) as (_, stub):
        sessions = [await create(stub, user_id=f"user-{n}") for n in range(CLIENTS)]
        ledger.affected = {s.session_id for s in sessions if affected(s.user_id)}
        stop = asyncio.Event()
        async with clients_running(stub, sessions, ledger, stop):
            await asyncio.sleep(1)
            await asyncio.to_thread(kill)  # returns once the process is gone
            ledger.killed_at = time.monotonic()
            healing = asyncio.create_task(asyncio.to_thread(heal or (lambda: None)))
            while ledger.first_success_after_kill is None:
                assert time.monotonic() - ledger.killed_at < 60, "no Run succeeded after the kill"
                await asyncio.sleep(0.05)
            await asyncio.sleep(AFTER_RECOVERY_S)
            stop.set()
            await healing
        completed = Counter[tuple[str, str]]()
        for session in sessions:
            for turn in await all_turns(stub, session):
                if turn.status == pb.TURN_STATUS_COMPLETED:
                    completed[(session.session_id, turn.request_id)] += 1
    assert ledger.first_success_after_kill is not None
    return Outcome(
        acknowledged=len(ledger.acknowledged),
        lost=sum(1 for key in ledger.acknowledged if completed[key] == 0),
        duplicated=sum(1 for count in completed.values() if count > 1),
        recovery_s=ledger.first_success_after_kill - ledger.killed_at,
        errors=ledger.errors,
    )


@asynccontextmanager
async def clients_running(
    stub: Stub, sessions: list[pb.Session], ledger: Ledger, stop: asyncio.Event
) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(client(stub, session, ledger, stop)) for session in sessions]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def client(stub: Stub, session: pb.Session, ledger: Ledger, stop: asyncio.Event) -> None:
    """Runs turns one after another; retries each with its request id until it is
    acknowledged (or, once stopping, gives up on it unacknowledged)."""
    turn = 0
    while not stop.is_set():
        turn += 1
        request_id = f"{session.session_id}-{turn}"
        while not stop.is_set():
            started_at = time.monotonic()
            try:
                call = stub.Run(
                    pb.RunRequest(
                        session_id=session.session_id,
                        user_id=session.user_id,
                        input=f"turn {turn}",
                        request_id=request_id,
                    ),
                    timeout=10,
                )
                events = [event async for event in call]
            except grpc.aio.AioRpcError as error:
                ledger.errors[error.code().name] += 1
                # UNAVAILABLE while no primary answers; ABORTED when a retry attached to
                # the turn its failed attempt left running, until that turn's lease ends.
                assert error.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.ABORTED,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ), error.details()
                await asyncio.sleep(0.05)
                continue
            assert events[-1].HasField("completed")
            ledger.succeeded(session.session_id, request_id, started_at)
            break


async def all_turns(stub: Stub, session: pb.Session) -> list[pb.Turn]:
    found: list[pb.Turn] = []
    token = ""
    while True:
        request = pb.ListTurnsRequest(
            session_id=session.session_id,
            user_id=session.user_id,
            page_size=100,
            page_token=token,
            include_archived=True,
        )
        page = await stub.ListTurns(request, wait_for_ready=True, timeout=10)
        found += page.turns
        token = page.next_page_token
        if not token:
            return found
