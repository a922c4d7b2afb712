"""The load generator of `make bench`: closed-loop grpc.aio clients and what they measure.

``concurrency`` workers each keep one call in flight, back to back, over the given
channels (worker ``i`` uses channel ``i % len(channels)``, so replicas and worker
processes share the load). After a warm-up, a window of ``seconds`` is measured:
the calls that complete in it give the rate and latencies, and the CPU time that the
server processes (with their children), Redis and this client spent in it gives the
CPU per call. Workers keep calling until the window closes, so the load is steady
across the whole window.

:func:`first_deltas` measures something else: at C=1, the time from a Run's start to its
first delta (time to first token), for several servers in alternating blocks of calls.

CPU time comes from ``/proc/<pid>/stat`` (utime + stime, in clock ticks of 10 ms):
over a window of seconds that is within a percent or so.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from agentsessions.sessions.v1 import sessions_pb2 as pb

from bench.stub import Stub

__all__ = [
    "TEXT",
    "Cell",
    "FirstDeltas",
    "Load",
    "cpu_by_process",
    "cpu_seconds",
    "create_calls",
    "first_delta",
    "first_deltas",
    "get_calls",
    "list_turns_calls",
    "measure",
    "open_channels",
    "percentile",
    "prime",
    "run_calls",
]

TEXT = "How's the weather in Shanghai today and tomorrow?"
"""The Run input: 8 words, so the echo agent's reply (from a session's turn 2 on:
``Echo (turn N): <input> (previous: "<input>")``) is 20 word chunks."""

_TICK = os.sysconf("SC_CLK_TCK")

Call = Callable[[int, int], Awaitable[int]]
"""One call of worker ``i``'s ``n``-th turn; returns the messages it received."""


def _stats() -> dict[int, tuple[int, int]]:
    """Every process's parent pid and CPU ticks (utime + stime)."""
    found: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            data = Path(entry.path, "stat").read_bytes()
        except OSError:  # it exited meanwhile
            continue
        # The command name may hold spaces and parentheses: fields start after the last ")".
        fields = data[data.rindex(b")") + 2 :].split()
        found[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return found


def cpu_by_process(roots: Sequence[int]) -> dict[int, float]:
    """CPU time used so far by each of the processes ``roots`` and all their descendants
    (the workers of a ``--workers`` supervisor), by pid."""
    stats = _stats()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    found: dict[int, float] = {}
    pending = [pid for pid in roots if pid in stats]
    while pending:
        pid = pending.pop()
        if pid in found:
            continue
        found[pid] = stats[pid][1] / _TICK
        pending += children.get(pid, ())
    return found


def cpu_seconds(roots: Sequence[int]) -> float:
    """CPU time used so far by the processes ``roots`` and all their descendants."""
    return sum(cpu_by_process(roots).values())


def percentile(values: Sequence[float], p: int) -> float:
    """Percentile ``p`` (1-99) of ``values``, in their unit."""
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[p - 1]


@dataclass(frozen=True)
class Load:
    """What to load and whose CPU to count."""

    concurrency: int
    warmup: float
    seconds: float
    server_pids: Sequence[int]
    redis_pid: int | None = None


@dataclass(frozen=True)
class Cell:
    """The measured window of one method at one concurrency."""

    calls: int
    elapsed: float
    latencies: list[float]
    messages: int
    server_cpu: float
    redis_cpu: float | None
    client_cpu: float
    server_cpu_by_pid: dict[int, float] = field(default_factory=dict)
    """``server_cpu`` by process (the server pids given, then their descendants)."""

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed

    def percentile(self, p: int) -> float:
        """Latency percentile ``p`` (1-99) in ms."""
        return percentile(self.latencies, p) * 1000

    def per_call_us(self, cpu: float | None) -> float | None:
        return None if cpu is None or not self.calls else cpu / self.calls * 1e6

    @property
    def messages_per_call(self) -> float:
        return self.messages / self.calls if self.calls else 0.0


_Sample = tuple[float, dict[int, float], float | None, float]
"""When, the servers' CPU by process, Redis's CPU, this process's CPU."""


async def measure(call: Call, load: Load) -> Cell:
    """Runs ``call`` closed-loop from ``load.concurrency`` workers; measures one window."""
    finished: list[tuple[float, float, int]] = []  # (end, latency, messages)
    stop = False

    async def worker(i: int) -> None:
        n = 0
        while not stop:
            started = time.perf_counter()
            messages = await call(i, n)
            ended = time.perf_counter()
            finished.append((ended, ended - started, messages))
            n += 1

    def sample() -> _Sample:
        redis_cpu = None if load.redis_pid is None else cpu_seconds([load.redis_pid])
        server = cpu_by_process(load.server_pids)
        return time.perf_counter(), server, redis_cpu, time.process_time()

    async def window() -> tuple[_Sample, _Sample]:
        nonlocal stop
        try:
            await asyncio.sleep(load.warmup)
            first = sample()
            await asyncio.sleep(load.seconds)
            return first, sample()
        finally:
            stop = True

    workers = [asyncio.create_task(worker(i)) for i in range(load.concurrency)]
    try:
        (began, server0, redis0, client0), (ended, server1, redis1, client1) = await window()
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    measured = [(latency, messages) for end, latency, messages in finished if began <= end < ended]
    # A process that started in the window counts from 0; one that exited in it is lost.
    by_pid = {pid: cpu - server0.get(pid, 0.0) for pid, cpu in server1.items()}
    return Cell(
        calls=len(measured),
        elapsed=ended - began,
        latencies=[latency for latency, _ in measured],
        messages=sum(messages for _, messages in measured),
        server_cpu=sum(by_pid.values()),
        server_cpu_by_pid=by_pid,
        redis_cpu=None if redis0 is None or redis1 is None else redis1 - redis0,
        client_cpu=client1 - client0,
    )


def open_channels(addresses: Sequence[str], per_address: int = 1) -> list[grpc.aio.Channel]:
    """``per_address`` channels to each address, each with a connection of its own.

    Several connections to one port spread the calls over the processes that share
    it with SO_REUSEPORT (the kernel gives each connection to one of them).
    """
    options = [("grpc.use_local_subchannel_pool", 1)] if per_address > 1 else []
    return [
        grpc.aio.insecure_channel(address, options=options)
        for _ in range(per_address)
        for address in addresses
    ]


async def run_once(stub: Stub, session_id: str, user_id: str, text: str = TEXT) -> int:
    """One Run to its end; returns how many messages it streamed."""
    count = 0
    async for _ in stub.Run(pb.RunRequest(session_id=session_id, user_id=user_id, input=text)):
        count += 1
    return count


async def first_delta(
    stub: Stub, session_id: str, user_id: str, text: str = TEXT
) -> tuple[float, float]:
    """One Run to its end: seconds from the call's start to its first event carrying a
    delta (the ``started`` event before it does not count), and to the stream's end."""
    began = time.perf_counter()
    first: float | None = None
    async for event in stub.Run(pb.RunRequest(session_id=session_id, user_id=user_id, input=text)):
        if first is None and event.HasField("delta"):
            first = time.perf_counter() - began
    whole = time.perf_counter() - began
    if first is None:
        raise RuntimeError(f"Run of session {session_id} streamed no delta")
    return first, whole


@dataclass
class FirstDeltas:
    """One server's Runs at C=1: seconds to the first delta and to the end, in call order."""

    first: list[float] = field(default_factory=list)
    whole: list[float] = field(default_factory=list)


async def first_deltas(
    targets: dict[str, tuple[Sequence[Stub], Sequence[tuple[str, str]]]],
    samples: int,
    block: int = 10,
) -> dict[str, FirstDeltas]:
    """``samples`` Runs of each target (label -> its stubs and primed sessions), one at a
    time, in alternating blocks of ``block`` calls (the order of the targets reversed each
    round), so that drift in the machine's speed weighs on all alike. Call ``k`` of a
    target uses its stub and session ``k`` modulo their number. One unmeasured call of
    each target first warms its channel."""
    found = {label: FirstDeltas() for label in targets}
    for stubs, sessions in targets.values():
        await first_delta(stubs[0], *sessions[0])
    done = 0
    order = list(targets.items())
    while done < samples:
        size = min(block, samples - done)
        for label, (stubs, sessions) in order:
            for k in range(done, done + size):
                first, whole = await first_delta(
                    stubs[k % len(stubs)], *sessions[k % len(sessions)]
                )
                found[label].first.append(first)
                found[label].whole.append(whole)
        done += size
        order.reverse()  # A B, B A, A B...: no target always follows the other
    return found


async def prime(stubs: Sequence[Stub], sessions: Sequence[tuple[str, str]]) -> None:
    """Runs each session's turn 1, whose echo reply is shorter (no previous input to quote):
    measured turns are then all alike."""
    await asyncio.gather(
        *(
            run_once(stubs[i % len(stubs)], session_id, user_id)
            for i, (session_id, user_id) in enumerate(sessions)
        )
    )


def run_calls(stubs: Sequence[Stub], sessions: Sequence[tuple[str, str]]) -> Call:
    """Worker ``i`` runs turns in ``sessions[i]`` (session id, user id), one at a time."""

    async def call(i: int, n: int) -> int:
        session_id, user_id = sessions[i]
        return await run_once(stubs[i % len(stubs)], session_id, user_id)

    return call


def create_calls(stubs: Sequence[Stub], label: str) -> Call:
    """Worker ``i`` creates sessions, for a new user every 100 (users have a session limit)."""

    async def call(i: int, n: int) -> int:
        request = pb.CreateSessionRequest(user_id=f"{label}-{i}-{n // 100}", agent_id="echo")
        await stubs[i % len(stubs)].CreateSession(request)
        return 1

    return call


def get_calls(stubs: Sequence[Stub], sessions: Sequence[tuple[str, str]]) -> Call:
    async def call(i: int, n: int) -> int:
        session_id, user_id = sessions[i]
        await stubs[i % len(stubs)].GetSession(
            pb.GetSessionRequest(session_id=session_id, user_id=user_id)
        )
        return 1

    return call


def list_turns_calls(
    stubs: Sequence[Stub], sessions: Sequence[tuple[str, str]], page_size: int = 20
) -> Call:
    """The newest ``page_size`` turns, as a conversation view asks for them."""

    async def call(i: int, n: int) -> int:
        session_id, user_id = sessions[i]
        await stubs[i % len(stubs)].ListTurns(
            pb.ListTurnsRequest(
                session_id=session_id, user_id=user_id, page_size=page_size, order_by="index desc"
            )
        )
        return 1

    return call
