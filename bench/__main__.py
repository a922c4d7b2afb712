"""`make bench`: the service's calls over real gRPC, against a minimal reference.

The session servers run as processes of their own (as in production) with the echo
agent; this process is the load client (grpc.aio, C calls in flight). For the memory
store and for a test-owned Redis it measures CreateSession, GetSession, Run and
ListTurns at concurrency 1, 16 and 64: calls/s, p50/p99 latency and CPU per call of
the server, redis-server and the client.

On the same Redis it measures the reference (bench/reference.py, a process of its
own: Run with two Redis round trips and nothing else) and reports the project's Run
throughput and server CPU per Run as ratios to it; a second variant of the reference
sends the reply as one delta, as the project's coalescing does with the echo agent.
At C=1, the time from a Run's start to its first delta, the project's against the joined
reference's, measured in alternating blocks of calls so that drift cancels.
Then Run at C=64 with `session-server --workers 1` against `--workers 2` (skipped with a
note when the server refuses --workers), with the server CPU per Run of each and
the throughput it projects for more cores, and the latency of a session's turn 2
against its turn 1,000, measured alternately so that drift cancels.

`--run-only` measures only that much: Run on Redis against the references, the first
delta and the workers (issue 16's figures).

Last, the items API (bench/items.py, `--items-only` for that section alone): a turn of an
external agent's session, one AppendItems of 4 items and one ListItems of the last 40,
at 10, 1,000 and 10,000 items of history, and the same turn through the OpenAI Agents
SDK's RedisSession and Google ADK's RedisSessionService on the same Redis (each skipped
with a note if its import fails).

Then the sessions' event log (bench/watch.py, `--watch-only` for that section alone, on a
Redis of its own): Run at C=16 and 64 against a server from the tree before the log
(`--baseline-src DIR`, measured alternately), a delta's latency from the agent to a
WatchSession on another replica, and a watched session's Redis memory over 3,000 turns.

Then what each Redis durability setting costs a Run (bench/durability.py,
`--durability-only` for that section alone, on Redis processes of its own): no persistence,
AOF fsync everysec and always, a replica with `--redis-min-replicas` 0 and 1; Run/s and
server CPU per Run at C=16, latency at C=1, each against no persistence.

The results go to stdout and to a markdown file (--output). Figures vary 10-20%
between identical runs, more when the machine is busy: compare figures of one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
import redis
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import conversations, durability, items, watch
from bench.load import (
    TEXT,
    Cell,
    FirstDeltas,
    Load,
    create_calls,
    first_deltas,
    get_calls,
    list_turns_calls,
    measure,
    open_channels,
    percentile,
    prime,
    run_calls,
    run_once,
)
from bench.stub import Stub
from launchers.redis_cluster import LocalCluster
from launchers.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCIES = (1, 16, 64)
METHODS = ("CreateSession", "GetSession", "Run", "ListTurns")
WORKERS_CONCURRENCY = 64
WORKERS_CHANNELS = 16
"""Connections for the --workers measurement: the kernel spreads connections, not calls,
over the processes sharing the port, so one connection would reach one worker only."""
PROJECTED_CORES = (2, 4, 8)
FIRST_DELTA_SESSIONS = 10
"""Sessions each side of the first-delta measurement takes turns in (so none grows long)."""
FIRST_DELTA_BLOCK = 10
"""Calls in a row to one server in the first-delta measurement, before the other's turn."""
PROJECT = "project"
JOINED = "joined"


class ServerExited(RuntimeError):
    """A server process exited before it was ready."""

    def __init__(self, command: Sequence[str], returncode: int, log: str) -> None:
        super().__init__(f"{' '.join(command)} exited with {returncode}:\n{log}")
        self.returncode = returncode
        self.log = log


@dataclass(frozen=True)
class Server:
    address: str
    pid: int


def session_server_command(address: str, store_url: str, *extra: str) -> list[str]:
    return [
        str(Path(sys.executable).parent / "session-server"),
        "--address",
        address,
        "--store",
        store_url,
        "--log-level",
        "WARNING",
        "--default-agent",
        "echo",
        *extra,
    ]


REFERENCES = {"20 deltas": False, JOINED: True}
"""The reference's variants, by whether it joins the reply into one delta (``--join``)."""


def reference_command(address: str, redis_url: str, join: bool) -> list[str]:
    command = [sys.executable, "-m", "bench.reference", "--address", address]
    return command + ["--redis-url", redis_url] + (["--join"] if join else [])


def _tail(log: IO[bytes], limit: int = 4000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]


@asynccontextmanager
async def started(commands: Sequence[tuple[str, list[str], bool]]) -> AsyncIterator[list[Server]]:
    """Starts each (address, command, has health service) and waits until all serve.

    Raises :class:`ServerExited` if one exits first. Their stderr goes to a file, shown
    when they stop if they wrote anything (warnings and errors only).
    """
    running: list[tuple[asyncio.subprocess.Process, IO[bytes], list[str]]] = []
    with ExitStack() as logs:
        try:
            for _, command, _ in commands:
                log: IO[bytes] = logs.enter_context(tempfile.TemporaryFile())
                process = await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.DEVNULL, stderr=log, cwd=ROOT
                )
                running.append((process, log, command))
            for (address, _, health), (process, log, command) in zip(
                commands, running, strict=True
            ):
                await _wait_ready(address, health, process, log, command)
            yield [
                Server(address, process.pid)
                for (address, _, _), (process, _, _) in zip(commands, running, strict=True)
            ]
        finally:
            for process, _, _ in running:
                if process.returncode is None:
                    process.terminate()
            for process, log, command in running:
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
                text = _tail(log)
                if text.strip() and process.returncode in (0, -15):
                    print(f"[{command[0]} wrote]\n{text}", file=sys.stderr)


async def _wait_ready(
    address: str,
    health: bool,
    process: asyncio.subprocess.Process,
    log: IO[bytes],
    command: list[str],
) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        checker = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            if process.returncode is not None:
                raise ServerExited(command, process.returncode, _tail(log))
            try:
                if not health:
                    await asyncio.wait_for(channel.channel_ready(), 0.5)
                    return
                answer = await checker.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except (grpc.aio.AioRpcError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{' '.join(command)} did not become ready on {address}")


# Results


@dataclass
class Results:
    seconds: float
    warmup: float
    replicas: int
    turns: int
    cells: dict[tuple[str, str, int], Cell] = field(default_factory=dict)
    reference: dict[tuple[str, int], Cell] = field(default_factory=dict)
    first_delta: dict[str, FirstDeltas] = field(default_factory=dict)
    """Run at C=1 on Redis, the project's (PROJECT) and the joined reference's (JOINED)."""
    workers: dict[int, Cell] = field(default_factory=dict)
    workers_roots: dict[int, int] = field(default_factory=dict)
    """The pid ``session-server --workers N`` started as (with N > 1: the supervisor)."""
    workers_note: str = ""
    history: dict[str, tuple[float, float, int, int]] = field(default_factory=dict)
    context_window: tuple[float, float, int, int] | None = None
    sizes: list[str] = field(default_factory=list)
    items: items.ItemsResults | None = None
    watch: watch.WatchResults | None = None
    durability: durability.DurabilityResults | None = None
    load_at_start: tuple[float, float] = (0.0, 0.0)
    wall: float = 0.0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _describe(what: str, cell: Cell) -> str:
    return (
        f"{what:30} {cell.rate:7.0f} calls/s  p50 {cell.percentile(50):6.2f} ms"
        f"  p99 {cell.percentile(99):6.2f} ms  server {_us(cell.per_call_us(cell.server_cpu))} µs"
    )


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _split(cell: Cell, root: int) -> str:
    """The server CPU of ``cell`` by process, in cores: the one started, then its workers."""
    own = cell.server_cpu_by_pid.get(root, 0.0) / cell.elapsed
    workers = [cpu / cell.elapsed for pid, cpu in cell.server_cpu_by_pid.items() if pid != root]
    if not workers:
        return f"1 process, {own:.2f} cores"
    shares = " + ".join(f"{w:.2f}" for w in workers)
    return f"supervisor {own:.2f} cores, {len(workers)} workers {shares} cores"


# Measurements


async def create_sessions(stubs: Sequence[Stub], label: str, count: int) -> list[tuple[str, str]]:
    sessions = []
    for i in range(count):
        session: pb.Session = await stubs[i % len(stubs)].CreateSession(
            pb.CreateSessionRequest(user_id=f"{label}-{i}", agent_id="echo")
        )
        sessions.append((session.session_id, session.user_id))
    return sessions


async def bench_store(
    results: Results,
    store: str,
    servers: Sequence[Server],
    redis_pid: int | None,
    references: dict[str, list[Server]] | None = None,
    *,
    turns: int,
    samples: int,
    methods: Sequence[str] = METHODS,
    long_session_too: bool = True,
) -> None:
    """Each of ``methods`` at every concurrency; after each Run, the reference's Run;
    then, with ``long_session_too``, a long session's turn 2 against its turn N."""
    channels = open_channels([s.address for s in servers])
    reference_channels = {
        variant: open_channels([s.address for s in processes])
        for variant, processes in (references or {}).items()
    }
    try:
        stubs = [Stub(c) for c in channels]
        for concurrency in CONCURRENCIES:
            sessions = await create_sessions(stubs, f"{store}-c{concurrency}", concurrency)
            await prime(stubs, sessions)
            calls = {
                "CreateSession": create_calls(stubs, f"{store}-new-c{concurrency}"),
                "GetSession": get_calls(stubs, sessions),
                "Run": run_calls(stubs, sessions),
                "ListTurns": list_turns_calls(stubs, sessions),
            }
            pids = [s.pid for s in servers]
            load = Load(concurrency, results.warmup, results.seconds, pids, redis_pid)
            for method in methods:
                cell = await measure(calls[method], load)
                results.cells[store, method, concurrency] = cell
                _progress(_describe(f"{store} {method} C={concurrency}", cell))
                if method != "Run":
                    continue
                # Right after the project's Run, so that both see the same machine.
                for variant, ref_channels in reference_channels.items():
                    ref_pids = [s.pid for s in (references or {})[variant]]
                    ref_load = Load(
                        concurrency, results.warmup, results.seconds, ref_pids, redis_pid
                    )
                    ref_sessions = [
                        (f"ref-{variant}-c{concurrency}-{i}", "bench") for i in range(concurrency)
                    ]
                    ref_stubs = [Stub(c) for c in ref_channels]
                    await prime(ref_stubs, ref_sessions)
                    ref_call = run_calls(ref_stubs, ref_sessions)
                    cell = await measure(ref_call, ref_load)
                    results.reference[variant, concurrency] = cell
                    _progress(_describe(f"reference ({variant}) Run C={concurrency}", cell))
        if long_session_too:
            early, late = await long_session(stubs[0], turns, samples)
            results.history[store] = (early, late, turns, samples)
            _progress(f"{store} turn 2 p50 {early:.2f} ms, turn {turns:,}+ p50 {late:.2f} ms")
    finally:
        for channel in channels + [c for cs in reference_channels.values() for c in cs]:
            await channel.close(None)


async def long_session(stub: Stub, turns: int, samples: int) -> tuple[float, float]:
    """The p50 of an early turn against the p50 of turn ``turns`` onwards of one session.

    Early and late turns are measured alternately, so that drift in the machine's
    speed during the run weighs on both alike. The early turn is each fresh
    session's turn 2, not turn 1: turn 1's echo reply is shorter (it has no previous
    input to quote), so it would not be the same work.
    """
    long: pb.Session = await stub.CreateSession(
        pb.CreateSessionRequest(user_id="long", agent_id="echo")
    )
    for _ in range(turns - 1):
        await run_once(stub, long.session_id, long.user_id)
    early: list[float] = []
    late: list[float] = []
    for i in range(samples):
        fresh: pb.Session = await stub.CreateSession(
            pb.CreateSessionRequest(user_id=f"fresh-{i}", agent_id="echo")
        )
        await run_once(stub, fresh.session_id, fresh.user_id)
        started = time.perf_counter()
        await run_once(stub, fresh.session_id, fresh.user_id)
        early.append(time.perf_counter() - started)
        started = time.perf_counter()
        await run_once(stub, long.session_id, long.user_id)
        late.append(time.perf_counter() - started)
    return statistics.median(early) * 1000, statistics.median(late) * 1000


async def bench_first_delta(
    results: Results, project: Sequence[Server], reference: Sequence[Server], samples: int
) -> None:
    """Run at C=1, the project's against the joined reference's: time to the first delta."""
    channels = open_channels([s.address for s in project])
    ref_channels = open_channels([s.address for s in reference])
    try:
        stubs = [Stub(c) for c in channels]
        ref_stubs = [Stub(c) for c in ref_channels]
        sessions = await create_sessions(stubs, "first-delta", FIRST_DELTA_SESSIONS)
        ref_sessions = [(f"ref-first-delta-{i}", "bench") for i in range(FIRST_DELTA_SESSIONS)]
        await prime(stubs, sessions)
        await prime(ref_stubs, ref_sessions)
        results.first_delta = await first_deltas(
            {PROJECT: (stubs, sessions), JOINED: (ref_stubs, ref_sessions)},
            samples,
            FIRST_DELTA_BLOCK,
        )
    finally:
        for channel in channels + ref_channels:
            await channel.close(None)
    for label, found in results.first_delta.items():
        _progress(
            f"{'reference (joined)' if label == JOINED else label} Run C=1 first delta "
            f"p50 {percentile(found.first, 50) * 1000:.2f} ms "
            f"p99 {percentile(found.first, 99) * 1000:.2f} ms ({len(found.first)} calls)"
        )


async def bench_workers(results: Results, redis_server: RedisServer) -> None:
    """Run at C=64 on Redis with ``session-server --workers 1`` and ``--workers 2``."""
    for workers in (1, 2):
        address = f"127.0.0.1:{free_port()}"
        command = session_server_command(address, redis_server.url, "--workers", str(workers))
        try:
            async with started([(address, command, True)]) as servers:
                channels = open_channels([address], per_address=WORKERS_CHANNELS)
                try:
                    stubs = [Stub(c) for c in channels]
                    sessions = await create_sessions(
                        stubs, f"workers{workers}", WORKERS_CONCURRENCY
                    )
                    await prime(stubs, sessions)
                    load = Load(
                        WORKERS_CONCURRENCY,
                        results.warmup,
                        results.seconds,
                        [servers[0].pid],
                        redis_server.process.pid if redis_server.process else None,
                    )
                    cell = await measure(run_calls(stubs, sessions), load)
                finally:
                    for channel in channels:
                        await channel.close(None)
        except ServerExited as error:
            if error.returncode != 2:
                raise
            last = error.log.strip().splitlines()[-1:] or ["(nothing on stderr)"]
            results.workers_note = (
                f"skipped: `session-server --workers {workers}` was refused "
                f"(exit code 2: {last[0]})"
            )
            _progress(f"--workers {results.workers_note}")
            return
        results.workers[workers] = cell
        results.workers_roots[workers] = servers[0].pid
        _progress(
            _describe(f"redis Run C=64 --workers {workers}", cell)
            + f"  ({_split(cell, servers[0].pid)})"
        )


async def bench(results: Results, args: argparse.Namespace) -> None:
    run_only = args.run_only
    if not run_only:
        address = f"127.0.0.1:{free_port()}"
        memory = [(address, session_server_command(address, "memory://"), True)]
        async with started(memory) as servers:
            await bench_store(
                results, "memory", servers, None, turns=args.turns, samples=args.samples
            )
    redis_server = RedisServer()
    redis_server.start()
    assert redis_server.process is not None
    try:
        replicas = args.replicas
        project = [f"127.0.0.1:{free_port()}" for _ in range(replicas)]
        commands = [(a, session_server_command(a, redis_server.url), True) for a in project]
        for join in REFERENCES.values():
            for _ in range(replicas):
                address = f"127.0.0.1:{free_port()}"
                commands.append(
                    (address, reference_command(address, redis_server.url, join), False)
                )
        async with started(commands) as servers:
            references = {
                variant: servers[replicas * (i + 1) : replicas * (i + 2)]
                for i, variant in enumerate(REFERENCES)
            }
            await bench_store(
                results,
                "redis",
                servers[:replicas],
                redis_server.process.pid,
                references,
                turns=args.turns,
                samples=args.samples,
                methods=("Run",) if run_only else METHODS,
                long_session_too=not run_only,
            )
            await bench_first_delta(
                results, servers[:replicas], references[JOINED], args.first_delta_samples
            )
        await bench_workers(results, redis_server)
        if run_only:
            return
        await bench_long_conversations(results, redis_server, args)
        await bench_items(results, redis_server)
    finally:
        redis_server.stop()
    await bench_cluster(results, args)
    await bench_watch(results, args)
    await bench_durability(results, args)


async def bench_items_only(results: Results) -> None:
    redis_server = RedisServer()
    redis_server.start()
    try:
        await bench_items(results, redis_server)
    finally:
        redis_server.stop()


async def bench_items(results: Results, redis_server: RedisServer) -> None:
    """A turn of an external agent's session (AppendItems + ListItems), ours and the peers'."""
    assert redis_server.process is not None
    redis_pid = redis_server.process.pid
    results.items = found = items.ItemsResults()
    address = f"127.0.0.1:{free_port()}"
    # No compaction: the histories keep every item. Pre-fill appends of 1,000 items.
    command = session_server_command(
        address,
        redis_server.url,
        "--max-history-turns",
        "0",
        "--max-history-bytes",
        "0",
        "--max-items-per-append",
        str(items.PREFILL_CHUNK),
    )
    warmup, seconds = results.warmup, results.seconds
    async with started([(address, command, True)]) as servers:
        [channel] = open_channels([address])
        try:
            await items.bench_ours(
                found, channel, servers[0].pid, redis_pid, warmup=warmup, seconds=seconds
            )
            await items.bench_ours_adk_calls(
                found, channel, servers[0].pid, redis_pid, warmup=warmup, seconds=seconds
            )
            for adapter in (items.bench_openai_adapter, items.bench_adk_adapter):
                await adapter(
                    found, address, servers[0].pid, redis_pid, warmup=warmup, seconds=seconds
                )
        finally:
            await channel.close(None)
    for peer in (items.bench_openai_agents, items.bench_adk):
        await peer(found, redis_server.url, redis_pid, warmup=warmup, seconds=seconds)


async def bench_cluster(results: Results, args: argparse.Namespace) -> None:
    """Every method at every concurrency with the store on a 3-master Redis Cluster."""
    cluster = LocalCluster()
    cluster.start()
    try:
        address = f"127.0.0.1:{free_port()}"
        command = session_server_command(address, cluster.url)
        async with started([(address, command, True)]) as servers:
            await bench_store(
                results, "cluster", servers, None, turns=args.turns, samples=args.samples
            )
    finally:
        cluster.stop()


async def bench_watch(results: Results, args: argparse.Namespace) -> None:
    """The event log's cost to Run, a delta's latency to a watcher, a watched session's size."""
    results.watch = watch.WatchResults(warmup=results.warmup, seconds=results.seconds)
    redis_server = RedisServer()
    redis_server.start()
    try:
        await watch.bench_watch(
            results.watch,
            watch.Launcher(started, session_server_command),
            redis_server,
            baseline_src=args.baseline_src,
            quick=args.quick,
        )
    finally:
        redis_server.stop()


async def bench_durability(results: Results, args: argparse.Namespace) -> None:
    """Run with each Redis durability setting, against Redis with no persistence."""
    results.durability = durability.DurabilityResults(
        warmup=results.warmup, seconds=results.seconds
    )
    await durability.bench_durability(
        results.durability,
        watch.Launcher(started, session_server_command),
        rounds=1 if args.quick else 3,
    )


async def bench_long_conversations(
    results: Results, redis_server: RedisServer, args: argparse.Namespace
) -> None:
    """Run at turn 10 against turn 10,000 with the default context window; session sizes."""
    late = 1_000 if args.quick else 10_000
    address = f"127.0.0.1:{free_port()}"
    # No compaction: the history holds every turn, and only the context window bounds a Run.
    command = session_server_command(
        address, redis_server.url, "--max-history-turns", "0", "--max-history-bytes", "0"
    )
    async with started([(address, command, True)]):
        [channel] = open_channels([address])
        try:
            early_ms, late_ms = await conversations.turn_latency(
                Stub(channel), early=10, late=late, samples=args.samples
            )
        finally:
            await channel.close(None)
    results.context_window = (early_ms, late_ms, late, args.samples)
    _progress(f"redis turn 10 p50 {early_ms:.2f} ms, turn {late:,}+ p50 {late_ms:.2f} ms")
    results.sizes = conversations.report(await conversations.sizes(redis_server))


# The report


def machine(load_at_start: tuple[float, float]) -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    try:
        version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=True
        ).stdout
        redis_server = next((w[2:] for w in version.split() if w.startswith("v=")), version.strip())
    except (OSError, subprocess.CalledProcessError):
        redis_server = "unknown"
    load1, load5, _ = os.getloadavg()
    return (
        f"{model}, {os.cpu_count()} cores, Linux {platform.release()}; "
        f"Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"redis-py {redis.__version__} + hiredis {importlib.metadata.version('hiredis')}, "
        f"redis-server {redis_server}; load average (1 / 5 min) "
        f"{load_at_start[0]:.2f} / {load_at_start[1]:.2f} at the start, "
        f"{load1:.2f} / {load5:.2f} at the end"
    )


def _cell_row(first: str, cell: Cell) -> str:
    return (
        f"| {first} | {cell.rate:,.0f} | {cell.percentile(50):.2f} | {cell.percentile(99):.2f} "
        f"| {_us(cell.per_call_us(cell.server_cpu))} | {_us(cell.per_call_us(cell.redis_cpu))} "
        f"| {_us(cell.per_call_us(cell.client_cpu))} |"
    )


_CELL_HEADER = (
    "calls/s | p50 ms | p99 ms | server CPU µs/call | redis-server CPU µs/call "
    "| client CPU µs/call |\n"
)


def _rule(columns: int) -> str:
    return "|---" * columns + "|\n"


def _ratio(value: float, target: str | None) -> str:
    """``value`` as a ratio, and whether it meets ``target`` (">= 0.9x", "<= 1.1x") if any."""
    if target is None:
        return f"{value:.2f}x"
    bound = float(target[2:].strip().removesuffix("x"))
    ok = value >= bound if target.startswith(">=") else value <= bound
    return f"{value:.2f}x ({'meets' if ok else 'misses'} {target})"


def _run_targets(variant: str, concurrency: int) -> tuple[str | None, str | None]:
    """The targets of the project's Run/s and server CPU per Run as ratios to a reference.

    Against the joined reference at C=16 and 64, issue 16's; against 20 deltas, the
    bench's first (parity).
    """
    if variant == JOINED:
        return (">= 0.9x", "<= 1.1x") if concurrency in (16, 64) else (None, None)
    return ">= 1.0x", "<= 1.0x"


def render_first_delta(found: dict[str, FirstDeltas]) -> str:
    """Request -> first delta at C=1, the project's against the joined reference's."""
    own, ref = found[PROJECT], found[JOINED]
    out = [
        "\n## Request → first delta at C=1 (Redis, echo agent): project against reference "
        "(joined)\n\n"
        f"{len(own.first)} Runs each, one at a time, in alternating blocks of "
        f"{FIRST_DELTA_BLOCK} calls (the project's, then the reference's, then the "
        f"reference's, then the project's...) on the same Redis, over "
        f"{FIRST_DELTA_SESSIONS} sessions each. From the call's start in the client to the "
        "first RunEvent carrying a delta: both streams start with a `started` event, which "
        "does not count. The whole Run's p50 for scale."
        + (" p99 of so few calls is close to their maximum: noisy." if len(own.first) < 300 else "")
        + "\n\n| | first delta p50 ms | first delta p99 ms | whole Run p50 ms |\n"
        "|---|---|---|---|\n"
    ]
    for label, values in ((PROJECT, own), ("reference (joined)", ref)):
        out.append(
            f"| {label} | {percentile(values.first, 50) * 1000:.2f} "
            f"| {percentile(values.first, 99) * 1000:.2f} "
            f"| {percentile(values.whole, 50) * 1000:.2f} |\n"
        )
    ratios = [
        percentile(own.first, 50) / percentile(ref.first, 50),
        percentile(own.first, 99) / percentile(ref.first, 99),
        percentile(own.whole, 50) / percentile(ref.whole, 50),
    ]
    out.append(
        f"| ratio project / reference | {_ratio(ratios[0], '<= 1.15x')} "
        f"| {_ratio(ratios[1], '<= 1.3x')} | {_ratio(ratios[2], None)} |\n"
    )
    return "".join(out)


def render_workers_cost(results: Results) -> str:
    """Server CPU per Run with each --workers, their ratio, and what they project."""
    out = [
        "\n**Cost.** Server CPU per Run counts every process `session-server --workers N` "
        "runs: with N > 1 the supervisor and its N workers (its children), in cores over the "
        "window.\n\n"
        "| workers | Run/s (measured) | server CPU µs/Run (measured) | ratio to --workers 1 "
        "(target <= 1.1x) | processes, CPU in cores |\n"
        "|---|---|---|---|---|\n"
    ]
    one = results.workers.get(1)
    one_cpu = None if one is None else one.per_call_us(one.server_cpu)
    for workers, cell in results.workers.items():
        cpu = cell.per_call_us(cell.server_cpu)
        ratio = "-"
        if workers != 1 and cpu is not None and one_cpu:
            ratio = _ratio(cpu / one_cpu, "<= 1.1x")
        split = _split(cell, results.workers_roots[workers])
        out.append(f"| {workers} | {cell.rate:,.0f} | {_us(cpu)} | {ratio} | {split} |\n")
    widest = max(results.workers)
    cell = results.workers[widest]
    cpu = cell.per_call_us(cell.server_cpu)
    if not cpu:
        return "".join(out)
    out.append(
        "\n**Projection (not measured): cores ÷ server CPU per Run**, with --workers "
        f"{widest}'s {cpu:,.0f} µs per Run: the Runs/s that many cores would serve with as "
        "many workers if the server had them to itself (the load client and Redis elsewhere) "
        "and the cost per Run stayed as measured. Measured on this machine, where the "
        f"{os.cpu_count()} cores are shared with the load client and Redis: "
        + ", ".join(f"--workers {w} {c.rate:,.0f} Run/s" for w, c in results.workers.items())
        + ".\n\n| cores | Run/s projected (not measured) |\n|---|---|\n"
    )
    for cores in PROJECTED_CORES:
        out.append(f"| {cores} | {cores / cpu * 1e6:,.0f} |\n")
    redis_cpu = cell.per_call_us(cell.redis_cpu)
    if redis_cpu:
        out.append(
            f"\nAnd a bound whatever the cores (also a projection): redis-server is one "
            f"thread, and at {redis_cpu:,.0f} µs per Run it would serve at most "
            f"{1e6 / redis_cpu:,.0f} Run/s.\n"
        )
    return "".join(out)


def render(results: Results) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# `make bench` results\n",
        f"{stamp}, {results.wall:.0f} s. Machine: {machine(results.load_at_start)}.\n",
        "Each session server is a process of its own (echo agent); the load client is one "
        "grpc.aio process with C calls in flight on one channel per server, sharing the cores "
        "with the servers and Redis. "
        f"Each cell: {results.warmup:g} s warm-up, then {results.seconds:g} s measured. "
        "CPU per call is the CPU time (utime + stime, /proc) the process spent in the window "
        "over the calls completed in it. "
        f"Run input: {len(TEXT)} characters, 8 words (the echo reply: 20 word chunks). "
        "ListTurns: the newest 20 turns. "
        "Identical runs differ by 10-20%, more while other work shares the machine: "
        "compare figures of one run only.\n",
    ]
    for store in ("memory", "redis", "cluster"):
        if not any(key[0] == store for key in results.cells):
            continue
        processes = {
            "memory": "1 server process",
            "redis": (
                f"{results.replicas} server process{'es' if results.replicas > 1 else ''}"
                + (", calls alternating between them" if results.replicas > 1 else "")
                + ", a test-owned redis-server"
            ),
            "cluster": "1 server process, a test-owned 3-master Redis Cluster; redis-server "
            "CPU not measured",
        }[store]
        out.append(f"\n## {store} store ({processes})\n\n")
        out.append("| method | C | " + _CELL_HEADER + _rule(8))
        for method in METHODS:
            for concurrency in CONCURRENCIES:
                cell = results.cells.get((store, method, concurrency))
                if cell is not None:
                    out.append(_cell_row(f"{method} | {concurrency}", cell) + "\n")
    if results.reference:
        processes = f"{results.replicas} process{'es' if results.replicas > 1 else ''}"
        out.append(
            f"\n## Reference: Run in a minimal grpc.aio servicer ({processes} each, same Redis)\n\n"
            "bench/reference.py: one EVALSHA records the input, the echo reply streams, one "
            "EVALSHA stores the reply; no validation, no domain layer. **20 deltas** (the "
            "reference of the bench's first targets, parity) sends each word as a message (22 "
            "messages a Run); **joined** sends the reply as one delta (3 messages), as the "
            "project's coalescing does with the echo agent, whose 20 words are all there before "
            "the first is sent: that one compares like with like on the wire, and issue 16's "
            "targets refer to it (server CPU per Run <= 1.1x and Run/s >= 0.9x at C=16 and 64, "
            "first delta p50 <= 1.15x and p99 <= 1.3x at C=1).\n\n"
        )
        out.append("| reference | C | " + _CELL_HEADER + _rule(8))
        for (variant, concurrency), cell in results.reference.items():
            out.append(_cell_row(f"{variant} | {concurrency}", cell) + "\n")
        out.append(
            "\n## The project's Run against the reference (Redis)\n\n"
            "| reference | C | Run/s project / reference | throughput ratio | server CPU µs/Run "
            "project / reference | CPU-per-call ratio | messages per Run project / reference |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        for (variant, concurrency), ref in results.reference.items():
            own = results.cells["redis", "Run", concurrency]
            own_cpu = own.per_call_us(own.server_cpu) or 0.0
            ref_cpu = ref.per_call_us(ref.server_cpu) or 1.0
            rate_target, cpu_target = _run_targets(variant, concurrency)
            out.append(
                f"| {variant} | {concurrency} | {own.rate:,.0f} / {ref.rate:,.0f} "
                f"| {_ratio(own.rate / ref.rate, rate_target)} "
                f"| {own_cpu:,.0f} / {ref_cpu:,.0f} | {_ratio(own_cpu / ref_cpu, cpu_target)} "
                f"| {own.messages_per_call:.1f} / {ref.messages_per_call:.1f} |\n"
            )
    if results.first_delta:
        out.append(render_first_delta(results.first_delta))
    if results.workers or results.workers_note:
        out.append(
            f"\n## Run at C={WORKERS_CONCURRENCY} on Redis: `session-server --workers 1` "
            f"against `--workers 2`\n\n"
        )
    if results.workers_note:
        out.append(results.workers_note + "\n\n")
    if results.workers:
        out.append(
            f"{WORKERS_CHANNELS} connections (the kernel spreads connections, not calls, over "
            "the workers); server CPU counts every worker process. The workers share the two "
            "cores with the load client (which alone takes about half a core here) and Redis, "
            "so the gain is bounded by the machine, not by the server.\n\n"
        )
        out.append("| workers | " + _CELL_HEADER + _rule(7))
        for workers, cell in results.workers.items():
            out.append(_cell_row(str(workers), cell) + "\n")
        if 1 in results.workers and 2 in results.workers:
            scale = results.workers[2].rate / results.workers[1].rate
            out.append(f"\n--workers 2 / --workers 1 throughput: {scale:.2f}x\n")
        out.append(render_workers_cost(results))
    if results.history:
        out.append(
            f"\n## A long session: turn 2 against turn {results.turns:,} (Run, p50)\n\n"
            "Measured alternately (a fresh session's turn 2, then the long session's next "
            "turn), so drift in the machine's speed weighs on both alike. Turn 2, not turn 1: "
            "turn 1's echo reply has no previous input to quote, so it is shorter.\n\n"
            "| store | turn 2 p50 ms | turn N+ p50 ms | ratio (target <= 1.2) | samples |\n"
            "|---|---|---|---|---|\n"
        )
        for store, (early, late, turns, samples) in results.history.items():
            out.append(
                f"| {store} | {early:.2f} | {late:.2f} (N = {turns:,}) | {late / early:.2f} "
                f"| {samples} each |\n"
            )
    if results.context_window is not None:
        early, late, turns, samples = results.context_window
        out.append(
            f"\n## A long conversation: turn 10 against turn {turns:,} (Redis, Run, p50)\n\n"
            "Both histories imported, compaction off (the history holds every turn), the "
            "default context window (20 turns); measured alternately.\n\n"
            "| turn 10 p50 ms | turn N p50 ms | ratio (target <= 1.2) | samples |\n"
            "|---|---|---|---|\n"
            f"| {early:.2f} | {late:.2f} (N = {turns:,}) | {late / early:.2f} | {samples} each |\n"
        )
    if results.sizes:
        out.append(
            "\n## Session size in Redis (MEMORY USAGE of its keys, no compaction)\n\n"
            "Chat text: questions, and replies of 3-14 distinct sentences (0.3-2 KB); turns "
            "of 512 bytes or more zstd-compressed in the right-hand column.\n\n"
            + "\n".join(results.sizes)
            + "\n"
        )
    if results.items is not None:
        out.append(items.render(results.items))
    if results.watch is not None:
        out.append(watch.render(results.watch))
    if results.durability is not None:
        out.append(durability.render(results.durability))
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="make bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, help="measured seconds per cell (2.5)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per cell (0.3)")
    parser.add_argument("--turns", type=int, help="turns in the long session (1000)")
    parser.add_argument("--samples", type=int, help="turns measured each, early and late (200)")
    parser.add_argument(
        "--first-delta-samples",
        type=int,
        help="Runs at C=1 each, the project's and the joined reference's, timed to the\n"
        "first delta (600; 100 with --quick)",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="session-server processes on the one Redis, calls alternating between them;\n"
        "the reference runs as many (the memory store has one, as it cannot share)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of about a minute (short cells)"
    )
    parser.add_argument(
        "--run-only",
        action="store_true",
        help="only issue 16's figures: Run on Redis against the references at C=1, 16\n"
        "and 64, the first delta at C=1, and --workers 1 against 2",
    )
    parser.add_argument(
        "--items-only",
        action="store_true",
        help="only the items section (ours at 10, 1,000 and 10,000 items; the peers)",
    )
    parser.add_argument(
        "--watch-only",
        action="store_true",
        help="only the watch section (Run against --baseline-src, latency to a watcher,\n"
        "a watched session's memory)",
    )
    parser.add_argument(
        "--durability-only",
        action="store_true",
        help="only the durability section (Run with AOF everysec and always, and with a\n"
        "replica at --redis-min-replicas 0 and 1, against Redis with no persistence)",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=os.environ.get("BENCH_BASELINE_SRC") or None,
        help="a source tree of the service before the event log, for the watch section's\n"
        "Run comparison (e.g. `git worktree add /tmp/baseline 63d89f3`; default:\n"
        "$BENCH_BASELINE_SRC); without it the baseline is not measured",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=ROOT / "bench-results.md",
        help="markdown file of the results (default: bench-results.md at the repo root)",
    )
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.first_delta_samples is not None and args.first_delta_samples < 1:
        parser.error("--first-delta-samples must be at least 1")
    if sum((args.run_only, args.items_only, args.watch_only, args.durability_only)) > 1:
        parser.error(
            "--run-only, --items-only, --watch-only and --durability-only are each a section "
            "alone: give one"
        )
    if args.baseline_src is not None:
        args.baseline_src = args.baseline_src.resolve()
        if not (args.baseline_src / "service" / "agent_sessions").is_dir():
            parser.error(f"--baseline-src {args.baseline_src}: no service/agent_sessions in it")
    quick = args.quick
    defaults = {"seconds": 0.4 if quick else 2.5, "warmup": 0.1 if quick else 0.3}
    defaults |= {"turns": 100 if quick else 1000, "samples": 30 if quick else 200}
    defaults |= {"first_delta_samples": 100 if quick else 600}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    results = Results(
        seconds=args.seconds, warmup=args.warmup, replicas=args.replicas, turns=args.turns
    )
    results.load_at_start = os.getloadavg()[:2]
    began = time.perf_counter()
    if args.items_only:
        section = bench_items_only(results)
    elif args.watch_only:
        section = bench_watch(results, args)
    elif args.durability_only:
        section = bench_durability(results, args)
    else:
        section = bench(results, args)
    asyncio.run(section)
    results.wall = time.perf_counter() - began
    report = render(results)
    args.output.write_text(report)
    print(report)
    print(f"(written to {args.output})", file=sys.stderr)


if __name__ == "__main__":
    main()
