"""The watch section of `make bench` (`python -m bench --watch-only` for it alone).

Every session has an event log (a Redis stream beside its keys) that WatchSession and
ResumeRun read and every Run writes to. Three figures:

1. **Run throughput with no watchers, against the service before the log existed**:
   Run at C=16 and C=64 (echo agent) on one test-owned Redis, the current tree's
   server against a baseline server started from another source tree (``--baseline-src
   DIR``, e.g. ``git worktree add /tmp/baseline 63d89f3``) with the same Python.
   Measured alternately, current then baseline, round after round, so that drift in
   the machine's speed weighs on both alike; the rounds are pooled.
2. **Delta → watcher latency across replicas**: two server processes on the same
   Redis; a plugin agent (bench/ticking_agent.py) that streams 50 deltas 20 ms apart,
   each stamped with ``time.time_ns()`` at its yield; the Run goes to replica A, a
   WatchSession to replica B, and a delta's latency is the watcher's receive time minus
   its stamp (one machine, one clock). With the default publish delay (50 ms), with
   ``--publish-delay 0``, and for a detached run (its first delta published at once,
   the rest every publish delay). The Run's own caller on A is measured alongside.
3. **Redis memory of a long conversation with a watcher attached**: one session, a
   watcher reading it the whole time, 3,000 echo turns; every 500 turns the MEMORY
   USAGE (SAMPLES 0) of the session's events key and of all its keys. The log is a
   window (``--event-window-events``, 1,000 by default), so both should plateau.

The servers are started by :mod:`bench.__main__`'s ``started`` (passed in as ``start``,
with its ``session_server_command`` as ``command``): this module does not import it, as
``python -m bench`` runs that module as ``__main__``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from uuid import uuid4

import grpc
import redis
from agentsessions.sessions.v1 import sessions_pb2 as pb

from bench.load import Cell, Load, measure, open_channels, prime, run_calls, run_once
from bench.stub import Stub
from bench.ticking_agent import stamps
from launchers.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCIES = (16, 64)
KEY_PREFIX = "sessions:"
"""The servers' default ``--key-prefix``."""

DELTAS = 50
DELTA_INTERVAL_MS = 20
TICKING = "ticking"
AGENTS = {
    TICKING: {
        "kind": "plugin",
        "object": "bench.ticking_agent:TickingAgent",
        "options": {"count": DELTAS, "interval_ms": DELTA_INTERVAL_MS},
    }
}
"""The agents table of the latency servers: the stamping agent beside the built-in echo."""

WINDOW_EVENTS = 1000
"""The servers' default ``--event-window-events``."""
MEMORY_TURNS = 3000
MEMORY_EVERY = 500
PLATEAU = 0.10
"""The last two memory samples plateau when they differ by less than this fraction."""

LAUNCH = "from agent_sessions.cli import main; main()"
"""How a server starts from a source tree: the ``session-server`` entry point, imported
from the tree that ``PYTHONPATH`` names first (the installed package is the current
tree, in editable mode; PYTHONPATH comes before it)."""


class Process(Protocol):
    """A started server, as :mod:`bench.__main__`'s ``started`` gives it."""

    @property
    def address(self) -> str: ...

    @property
    def pid(self) -> int: ...


Start = Callable[
    [Sequence[tuple[str, list[str], bool]]], AbstractAsyncContextManager[Sequence[Process]]
]
"""Starts (address, command, has health service) processes; yields them once they serve."""
Command = Callable[..., list[str]]
"""``session_server_command(address, store_url, *extra)``: the installed server's command."""


@dataclass(frozen=True)
class Launcher:
    start: Start
    command: Command

    def server(self, src: Path, address: str, store_url: str, *extra: str) -> list[str]:
        """The server of source tree ``src`` with the bench's usual flags and ``extra``.

        Both trees start the same way (this Python, the entry point imported from the
        tree), so that only the code differs. The repository root is on the path for
        the plugin agent (bench.ticking_agent).
        """
        path = [src / "service", src / "clients" / "python" / "src", ROOT]
        flags = self.command(address, store_url, *extra)[1:]  # without the script itself
        pythonpath = "PYTHONPATH=" + ":".join(str(p) for p in path)
        return ["env", pythonpath, sys.executable, "-c", LAUNCH, *flags]


# Results


@dataclass(frozen=True)
class Latencies:
    """The deltas of one kind of run: what its watcher on B and its caller on A saw."""

    watcher_ms: list[float]
    caller_ms: list[float]
    runs: int

    @property
    def expected(self) -> int:
        return self.runs * DELTAS


@dataclass(frozen=True)
class MemorySample:
    turns: int
    events_bytes: int
    session_bytes: int
    events: int
    """Entries in the events stream (XLEN)."""
    by_key: dict[str, int]
    """Bytes of each of the session's keys, by name after the session's (``meta``: its hash)."""

    @property
    def keys(self) -> int:
        return len(self.by_key)


@dataclass
class WatchResults:
    throughput: dict[tuple[str, int], list[Cell]] = field(default_factory=dict)
    """(current or baseline, C) -> its measured rounds, in order."""
    baseline_note: str = ""
    latency: dict[str, Latencies] = field(default_factory=dict)
    memory: list[MemorySample] = field(default_factory=list)
    memory_watched: tuple[int, int] = (0, 0)
    """The watcher's last sequence number at the end, and the log's."""
    warmup: float = 0.0
    seconds: float = 0.0


CURRENT = "current"
BASELINE = "baseline"
DEFAULT_DELAY = "publish delay 50 ms (default)"
NO_DELAY = "--publish-delay 0"
DETACHED = "detached run, publish delay 50 ms"


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def pooled(cells: Sequence[Cell]) -> Cell:
    """The rounds of one cell as one window: rates and CPU per call over all of them."""
    redis_cpu = [c.redis_cpu for c in cells if c.redis_cpu is not None]
    return Cell(
        calls=sum(c.calls for c in cells),
        elapsed=sum(c.elapsed for c in cells),
        latencies=[latency for c in cells for latency in c.latencies],
        messages=sum(c.messages for c in cells),
        server_cpu=sum(c.server_cpu for c in cells),
        redis_cpu=sum(redis_cpu) if len(redis_cpu) == len(cells) else None,
        client_cpu=sum(c.client_cpu for c in cells),
    )


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _percentile(values: Sequence[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[p - 1]


# 1. Run throughput, current against baseline


async def bench_throughput(
    results: WatchResults,
    launcher: Launcher,
    redis_server: RedisServer,
    baseline_src: Path | None,
    *,
    rounds: int,
) -> None:
    """Run at each C, current and baseline alternately, ``rounds`` windows each."""
    assert redis_server.process is not None
    redis_pid = redis_server.process.pid
    trees = {CURRENT: ROOT}
    if baseline_src is None:
        results.baseline_note = "baseline not measured (no --baseline-src)"
        _progress(f"watch: {results.baseline_note}")
    else:
        trees[BASELINE] = baseline_src
    addresses = {name: f"127.0.0.1:{free_port()}" for name in trees}
    commands = [
        (addresses[name], launcher.server(src, addresses[name], redis_server.url), True)
        for name, src in trees.items()
    ]
    async with launcher.start(commands) as servers:
        pids = {name: server.pid for name, server in zip(trees, servers, strict=True)}
        channels = {name: open_channels([addresses[name]])[0] for name in trees}
        try:
            stubs = {name: Stub(channel) for name, channel in channels.items()}
            for concurrency in CONCURRENCIES:
                sessions = {
                    name: await _create(stub, f"watch-{name}-c{concurrency}", concurrency)
                    for name, stub in stubs.items()
                }
                for name, stub in stubs.items():
                    await prime([stub], sessions[name])
                for i in range(rounds):
                    for name, stub in stubs.items():
                        load = Load(
                            concurrency, results.warmup, results.seconds, [pids[name]], redis_pid
                        )
                        cell = await measure(run_calls([stub], sessions[name]), load)
                        results.throughput.setdefault((name, concurrency), []).append(cell)
                        _progress(
                            f"watch Run C={concurrency} {name} round {i + 1}: "
                            f"{cell.rate:7.0f} calls/s  server "
                            f"{_us(cell.per_call_us(cell.server_cpu))} µs/Run"
                        )
        finally:
            for channel in channels.values():
                await channel.close(None)


async def _create(
    stub: Stub, label: str, count: int, agent_id: str = "echo"
) -> list[tuple[str, str]]:
    sessions = []
    for i in range(count):
        session: pb.Session = await stub.CreateSession(
            pb.CreateSessionRequest(user_id=f"{label}-{i}", agent_id=agent_id)
        )
        sessions.append((session.session_id, session.user_id))
    return sessions


# 2. Delta -> watcher latency across replicas


async def bench_latency(
    results: WatchResults, launcher: Launcher, redis_server: RedisServer, *, runs: int
) -> None:
    """The stamping agent's deltas as a watcher on another replica receives them."""
    agents = ["--agents", json.dumps(AGENTS)]
    configurations = {
        DEFAULT_DELAY: ([], False),
        DETACHED: ([], True),
        NO_DELAY: (["--publish-delay", "0"], False),
    }
    pairs: dict[tuple[str, ...], list[str]] = {}  # the flags of each pair of replicas
    for extra, _ in configurations.values():
        pairs.setdefault(tuple(extra), [f"127.0.0.1:{free_port()}" for _ in range(2)])
    commands = [
        (address, launcher.server(ROOT, address, redis_server.url, *agents, *extra), True)
        for extra, addresses in pairs.items()
        for address in addresses
    ]
    async with launcher.start(commands):
        for name, (extra, detach) in configurations.items():
            replica_a, replica_b = pairs[tuple(extra)]
            async with (
                grpc.aio.insecure_channel(replica_a) as channel_a,
                grpc.aio.insecure_channel(replica_b) as channel_b,
            ):
                watcher: list[float] = []
                caller: list[float] = []
                for _ in range(runs):
                    watched, called = await _watched_run(
                        Stub(channel_a), Stub(channel_b), detach=detach
                    )
                    watcher += watched
                    caller += called
            found = results.latency[name] = Latencies(watcher, caller, runs)
            _progress(
                f"watch latency, {name}: watcher p50 {_percentile(watcher, 50):.1f} ms"
                f" p99 {_percentile(watcher, 99):.1f} ms ({len(watcher)}/{found.expected}"
                f" deltas); caller p50 {_percentile(caller, 50):.1f} ms"
            )


async def _watched_run(
    stub_a: Stub, stub_b: Stub, *, detach: bool
) -> tuple[list[float], list[float]]:
    """One run of the stamping agent on A, watched from B: each delta's latency (ms) at
    the watcher and at the Run's caller."""
    session: pb.Session = await stub_a.CreateSession(
        pb.CreateSessionRequest(user_id=f"watch-latency-{uuid4().hex[:8]}", agent_id=TICKING)
    )
    # From sequence 0: the watcher gets the whole log, whenever its stream is set up.
    watch = stub_b.WatchSession(
        pb.WatchSessionRequest(
            session_id=session.session_id, user_id=session.user_id, after_sequence=0
        )
    )

    async def watched() -> list[float]:
        latencies: list[float] = []
        async for event in watch:
            now = time.time_ns()
            kind = event.WhichOneof("event")
            if kind == "delta":
                latencies += [(now - stamp) / 1e6 for stamp in stamps(event.delta.text)]
            elif kind == "turn_committed":
                break
        return latencies

    watching = asyncio.create_task(watched())
    called: list[float] = []
    try:
        request = pb.RunRequest(
            session_id=session.session_id, user_id=session.user_id, input="go", detach=detach
        )
        async for event in stub_a.Run(request):
            now = time.time_ns()
            if event.WhichOneof("event") == "delta":
                called += [(now - stamp) / 1e6 for stamp in stamps(event.delta.text)]
        watched_ms = await asyncio.wait_for(watching, 30)
    finally:
        watch.cancel()
        watching.cancel()
    return watched_ms, called


# 3. Redis memory of a long conversation with a watcher attached


async def bench_memory(
    results: WatchResults, launcher: Launcher, redis_server: RedisServer, *, turns: int, every: int
) -> None:
    """A watched session's keys in Redis as its conversation grows."""
    address = f"127.0.0.1:{free_port()}"
    command = launcher.server(ROOT, address, redis_server.url)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        async with (
            launcher.start([(address, command, True)]),
            grpc.aio.insecure_channel(address) as channel,
        ):
            await _watched_conversation(results, Stub(channel), client, turns=turns, every=every)
    finally:
        client.close()


async def _watched_conversation(
    results: WatchResults, stub: Stub, client: redis.Redis, *, turns: int, every: int
) -> None:
    session: pb.Session = await stub.CreateSession(
        pb.CreateSessionRequest(user_id="watch-memory", agent_id="echo")
    )
    session_id, user_id = session.session_id, session.user_id
    meta = f"{KEY_PREFIX}{{{user_id}}}:s:{session_id}"
    watch = stub.WatchSession(
        pb.WatchSessionRequest(session_id=session_id, user_id=user_id, after_sequence=0)
    )
    last_seen = 0

    async def read() -> None:
        nonlocal last_seen
        async for event in watch:
            last_seen = event.sequence

    reading = asyncio.create_task(read())
    try:
        for turn in range(1, turns + 1):
            await run_once(stub, session_id, user_id)
            if turn % every == 0:
                sample = _memory(client, meta, turn)
                results.memory.append(sample)
                _progress(
                    f"watch memory at turn {turn:,}: events key {sample.events_bytes:,} B "
                    f"({sample.events:,} events), the session's {sample.keys} keys "
                    f"{sample.session_bytes:,} B"
                )
        newest = client.xrevrange(meta + ":events", count=1)
        logged = int(str(newest[0][0]).rpartition("-")[2]) if newest else 0
        for _ in range(100):  # let the watcher catch up with the last turn
            if last_seen >= logged:
                break
            await asyncio.sleep(0.02)
        results.memory_watched = (last_seen, logged)
        if reading.done():  # the watch ended early: say why
            reading.result()
    finally:
        watch.cancel()
        reading.cancel()


def _memory(client: redis.Redis, meta: str, turns: int) -> MemorySample:
    """MEMORY USAGE (SAMPLES 0) of the session's events key and of all its keys."""
    usage = {"meta": client.memory_usage(meta, samples=0) or 0}
    for key in client.scan_iter(match=meta + ":*", count=1000):
        usage[key.removeprefix(meta + ":")] = client.memory_usage(key, samples=0) or 0
    return MemorySample(
        turns=turns,
        events_bytes=usage.get("events", 0),
        session_bytes=sum(usage.values()),
        events=client.xlen(meta + ":events"),
        by_key=dict(sorted(usage.items())),
    )


def change(samples: Sequence[MemorySample]) -> tuple[float, float] | None:
    """How the last sample differs from the one before (events key, all keys), as
    fractions of the one before; None with fewer than two samples."""
    if len(samples) < 2:
        return None
    before, last = samples[-2], samples[-1]
    return (
        (last.events_bytes - before.events_bytes) / max(before.events_bytes, 1),
        (last.session_bytes - before.session_bytes) / max(before.session_bytes, 1),
    )


# The section


async def bench_watch(
    results: WatchResults,
    launcher: Launcher,
    redis_server: RedisServer,
    *,
    baseline_src: Path | None,
    quick: bool,
) -> None:
    await bench_throughput(results, launcher, redis_server, baseline_src, rounds=2 if quick else 4)
    await bench_latency(results, launcher, redis_server, runs=2 if quick else 10)
    await bench_memory(
        results,
        launcher,
        redis_server,
        turns=MEMORY_TURNS // 2 if quick else MEMORY_TURNS,
        every=MEMORY_EVERY,
    )


def render(results: WatchResults) -> str:
    out = ["\n## Watching sessions: the event log's cost and latency (Redis)\n"]
    if results.throughput:
        out.append(
            "\n### Run throughput with no watchers, against the service before the event log\n\n"
            "Run (echo agent) on one test-owned Redis, one server process each: **current** is "
            "this tree (every Run logs its start, its reply and its commit to the session's "
            "events stream), **baseline** the tree given by `--baseline-src`, started the "
            "same way with the same Python. Measured alternately, a window of each in turn "
            f"({results.warmup:g} s warm-up, {results.seconds:g} s measured), the rounds "
            "pooled; the per-round rates show the noise.\n\n"
        )
        if results.baseline_note:
            out.append(results.baseline_note + ".\n\n")
        out.append(
            "| server | C | calls/s | rounds calls/s | p50 ms | server CPU µs/Run "
            "| redis-server CPU µs/Run |\n" + "|---" * 7 + "|\n"
        )
        for (name, concurrency), cells in results.throughput.items():
            cell = pooled(cells)
            rounds = ", ".join(f"{c.rate:,.0f}" for c in cells)
            out.append(
                f"| {name} | {concurrency} | {cell.rate:,.0f} | {rounds} "
                f"| {cell.percentile(50):.2f} | {_us(cell.per_call_us(cell.server_cpu))} "
                f"| {_us(cell.per_call_us(cell.redis_cpu))} |\n"
            )
        ratios = []
        for concurrency in CONCURRENCIES:
            current = results.throughput.get((CURRENT, concurrency))
            baseline = results.throughput.get((BASELINE, concurrency))
            if current is None or baseline is None:
                continue
            now, before = pooled(current), pooled(baseline)
            cpu_now = now.per_call_us(now.server_cpu) or 0.0
            cpu_before = before.per_call_us(before.server_cpu) or 1.0
            ratios.append(
                f"| {concurrency} | {now.rate / before.rate:.2f}x | {cpu_now / cpu_before:.2f}x |\n"
            )
        if ratios:
            out.append(
                "\n| C | throughput current / baseline | server CPU per Run current / baseline "
                "|\n|---|---|---|\n" + "".join(ratios)
            )
    if results.latency:
        out.append(
            "\n### Delta → watcher latency across replicas\n\n"
            "Two server processes on one Redis. A plugin agent (bench/ticking_agent.py) streams "
            f"{DELTAS} deltas {DELTA_INTERVAL_MS} ms apart, each carrying `time.time_ns()` at "
            "its yield; the Run goes to replica A, a WatchSession to replica B (both from this "
            "process). Latency: the time a delta reaches the watcher minus its stamp (one "
            "machine, one clock). A run publishes what it holds every publish delay (so a "
            "delta waits up to that long, then a Redis round trip and B's blocking read); a "
            "detached run publishes its first delta at once. The Run's own caller on A reads "
            "the deltas as the agent yields them, except a detached run's, which it reads "
            "from the log as a watcher does.\n\n"
            "| run | watcher p50 ms | watcher p99 ms | watcher max ms | deltas received "
            "| caller on A p50 ms | caller on A p99 ms |\n" + "|---" * 7 + "|\n"
        )
        for name, found in results.latency.items():
            watcher, caller = found.watcher_ms, found.caller_ms
            out.append(
                f"| {name} | {_percentile(watcher, 50):.1f} | {_percentile(watcher, 99):.1f} "
                f"| {max(watcher, default=float('nan')):.1f} "
                f"| {len(watcher):,} of {found.expected:,} ({found.runs} runs) "
                f"| {_percentile(caller, 50):.1f} | {_percentile(caller, 99):.1f} |\n"
            )
    if results.memory:
        last_seen, logged = results.memory_watched
        out.append(
            "\n### Redis memory of a long conversation with a watcher attached\n\n"
            "One session (echo agent, the server's default settings: event window "
            f"{WINDOW_EVENTS:,} events, history compaction on), a WatchSession reading it "
            "throughout; MEMORY USAGE (SAMPLES 0) of its events key and the sum over all the "
            f"session's keys, every {MEMORY_EVERY} turns. The watcher had read up to event "
            f"{last_seen:,} of {logged:,} at the end.\n\n"
            "| turns | events in the log | events key bytes | session's keys | all its keys "
            "bytes |\n" + "|---" * 5 + "|\n"
        )
        for sample in results.memory:
            out.append(
                f"| {sample.turns:,} | {sample.events:,} | {sample.events_bytes:,} "
                f"| {sample.keys} | {sample.session_bytes:,} |\n"
            )
        changed = change(results.memory)
        if changed is not None:
            events_change, session_change = changed
            flat = max(abs(events_change), abs(session_change)) < PLATEAU
            verdict = "plateaued" if flat else "did not plateau"
            out.append(
                f"\nLast two samples: events key {events_change:+.1%}, all keys "
                f"{session_change:+.1%} ({verdict}: under {PLATEAU:.0%} is the target).\n"
            )
        first, last = results.memory[0], results.memory[-1]
        out.append(
            f"\nBy key, at turn {first.turns:,} → turn {last.turns:,}: "
            + ", ".join(
                f"`{name}` {first.by_key.get(name, 0):,} → {size:,} B"
                for name, size in last.by_key.items()
            )
            + ".\n"
        )
    return "".join(out)
