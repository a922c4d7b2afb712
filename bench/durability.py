"""The durability section of `make bench` (`python -m bench --durability-only` for it alone).

What each Redis durability setting costs a Run (issue 17's deployment docs quote it):

1. one Redis, no persistence (the baseline the others are divided by);
2. one Redis, AOF with ``appendfsync everysec``;
3. one Redis, AOF with ``appendfsync always`` (an fsync before every reply);
4. a primary and one replica (asynchronous replication, no AOF), ``--redis-min-replicas 0``;
5. the same with ``--redis-min-replicas 1``: every acknowledged write waits for the
   replica (Redis WAIT in the write's round trip; ``--redis-replica-timeout`` 1 s).

Each setting has a Redis of its own (the launchers' RedisServer and LocalSentinelGroup
with no sentinels) and a server process of its own (echo agent), all started together.
Run at C=16 (throughput, server CPU per Run) and at C=1 (latency), a window of each
setting in turn, round after round with the order reversed every round, so that drift
in the machine's speed weighs on all alike; the rounds are pooled.

The servers are started by :mod:`bench.__main__`'s ``started`` and
``session_server_command``, passed in as a :class:`bench.watch.Launcher`.
"""

from __future__ import annotations

import shutil
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import redis
from agentsessions.sessions.v1 import sessions_pb2 as pb

from bench.load import Cell, Load, measure, open_channels, prime, run_calls
from bench.stub import Stub
from bench.watch import Launcher, pooled
from launchers.redis_sentinel import LocalSentinelGroup
from launchers.redis_server import RedisServer, free_port

THROUGHPUT_CONCURRENCY = 16
LATENCY_CONCURRENCY = 1

NONE = "1 Redis, no persistence"
EVERYSEC = "1 Redis, AOF appendfsync everysec"
ALWAYS = "1 Redis, AOF appendfsync always"
REPLICA = "primary + 1 replica, --redis-min-replicas 0"
REPLICA_WAIT = "primary + 1 replica, --redis-min-replicas 1"
SETTINGS: dict[str, tuple[str, ...]] = {
    NONE: (),
    EVERYSEC: (),
    ALWAYS: (),
    REPLICA: ("--redis-min-replicas", "0"),
    REPLICA_WAIT: ("--redis-min-replicas", "1"),
}
"""Each setting, in the order of the table (the first is the baseline), and the server's
flags for it."""


@dataclass(frozen=True)
class Store:
    """One setting's Redis: what the server connects to and whose CPU is counted."""

    port: int
    """The primary's."""
    pid: int
    """The primary's redis-server process."""
    workdir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@dataclass
class DurabilityResults:
    warmup: float
    seconds: float
    throughput: dict[str, list[Cell]] = field(default_factory=dict)
    """Setting -> its rounds at C=16, in order."""
    latency: dict[str, list[Cell]] = field(default_factory=dict)
    """Setting -> its rounds at C=1, in order."""
    checked: dict[str, str] = field(default_factory=dict)
    """Setting -> what its primary said of its persistence and replicas at the end."""
    disk: str = ""
    """The filesystem the AOF files were on."""


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


# The Redis processes


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)


def start_store(setting: str, stack: ExitStack) -> Store:
    """Starts ``setting``'s Redis; ``stack`` stops it and removes its directory."""
    if setting in (REPLICA, REPLICA_WAIT):
        group = LocalSentinelGroup(replicas=1, sentinels=0)
        group.start()  # stops what it started if it fails
        stack.callback(group.stop)
        port = group.redis_ports[0]
        return Store(port, group.processes[port].pid, group.workdir)
    server = RedisServer(append_only=setting != NONE)  # AOF with appendfsync always
    stack.callback(shutil.rmtree, server.workdir, ignore_errors=True)
    stack.callback(server.stop)
    server.start()
    assert server.process is not None
    if setting == EVERYSEC:
        client = _client(server.port)
        try:
            client.config_set("appendfsync", "everysec")
        finally:
            client.close()
    return Store(server.port, server.process.pid, server.workdir)


def describe(port: int) -> str:
    """The primary's persistence, its replicas and the WAITs it served, as it reports them."""
    client = _client(port)
    try:
        config = client.config_get("append*")
        replicas = int(client.info("replication")["connected_slaves"])
        waits = int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
    finally:
        client.close()
    aof = f"appendfsync {config['appendfsync']}" if config["appendonly"] == "yes" else "no AOF"
    return f"{aof}, {replicas} replica{'' if replicas == 1 else 's'}, {waits:,} WAIT calls"


def filesystem(path: Path) -> str:
    """The device and type of the filesystem ``path`` is on (/proc/mounts)."""
    resolved = str(path.resolve())
    best = ("", "unknown", "?")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind, *_ = line.split()
        inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best[0]):
            best = (mount, device, kind)
    return f"{best[1]} ({best[2]})"


# The measurement


async def _create(stub: Stub, label: str, count: int) -> list[tuple[str, str]]:
    sessions = []
    for i in range(count):
        session: pb.Session = await stub.CreateSession(
            pb.CreateSessionRequest(user_id=f"{label}-{i}", agent_id="echo")
        )
        sessions.append((session.session_id, session.user_id))
    return sessions


async def bench_durability(results: DurabilityResults, launcher: Launcher, *, rounds: int) -> None:
    """Run at C=16 and C=1 for every setting, alternately, ``rounds`` windows each."""
    with ExitStack() as stores_running:
        stores = {setting: start_store(setting, stores_running) for setting in SETTINGS}
        results.disk = filesystem(stores[ALWAYS].workdir)
        addresses = {setting: f"127.0.0.1:{free_port()}" for setting in SETTINGS}
        commands = [
            (address, launcher.command(address, stores[setting].url, *SETTINGS[setting]), True)
            for setting, address in addresses.items()
        ]
        async with launcher.start(commands) as servers:
            pids = {setting: s.pid for setting, s in zip(SETTINGS, servers, strict=True)}
            channels = {setting: open_channels([a])[0] for setting, a in addresses.items()}
            try:
                stubs = {setting: Stub(channel) for setting, channel in channels.items()}
                sessions = {
                    setting: await _create(
                        stub, f"durability-{i}", max(THROUGHPUT_CONCURRENCY, LATENCY_CONCURRENCY)
                    )
                    for i, (setting, stub) in enumerate(stubs.items())
                }
                for setting, stub in stubs.items():
                    await prime([stub], sessions[setting])
                order = list(SETTINGS)
                for round_ in range(rounds):
                    for setting in order:
                        found = {}
                        for concurrency, into in (
                            (THROUGHPUT_CONCURRENCY, results.throughput),
                            (LATENCY_CONCURRENCY, results.latency),
                        ):
                            load = Load(
                                concurrency,
                                results.warmup,
                                results.seconds,
                                [pids[setting]],
                                stores[setting].pid,
                            )
                            calls = run_calls([stubs[setting]], sessions[setting][:concurrency])
                            found[concurrency] = cell = await measure(calls, load)
                            into.setdefault(setting, []).append(cell)
                        wide = found[THROUGHPUT_CONCURRENCY]
                        one = found[LATENCY_CONCURRENCY]
                        _progress(
                            f"durability round {round_ + 1}, {setting}: C=16 {wide.rate:6.0f} "
                            f"Run/s, server {_us(wide.per_call_us(wide.server_cpu))} µs/Run; "
                            f"C=1 p50 {one.percentile(50):.2f} ms p99 {one.percentile(99):.2f} ms"
                        )
                    order.reverse()  # no setting always follows the same one
            finally:
                for channel in channels.values():
                    await channel.close(None)
        results.checked = {setting: describe(store.port) for setting, store in stores.items()}


# The report


def _with_ratio(value: float | None, base: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    figure = f"{value:,.{digits}f}"
    if not base:
        return figure
    return f"{figure} ({value / base:.2f}x)"


def render(results: DurabilityResults) -> str:
    if not results.throughput:
        return ""
    rounds = len(next(iter(results.throughput.values())))
    out = [
        "\n## Durability settings: what each costs a Run (Redis)\n\n"
        "Run (echo agent) with each Redis durability setting: a Redis of its own (test-owned, "
        "on loopback) and a server process of its own per setting, all started together and "
        f"measured in turn, {rounds} round{'s' if rounds != 1 else ''} (the order reversed "
        f"every round, the rounds pooled; {results.warmup:g} s warm-up, {results.seconds:g} s "
        f"measured per window). Throughput and CPU per Run at C={THROUGHPUT_CONCURRENCY}, "
        f"latency at C={LATENCY_CONCURRENCY}; in brackets, the ratio to (1). redis-server CPU "
        "is the primary's (the replica's is not counted). AOF files on "
        f"{results.disk or 'an unknown filesystem'}: what an fsync costs depends on the disk. "
        "The replica has no AOF; `--redis-min-replicas 1` adds Redis WAIT to each "
        "acknowledged write's round trip (`--redis-replica-timeout` 1 s, the default). "
        "The last column is what each primary reported at the end (its WAIT calls include "
        "the few of the launcher's start-up check). "
        "Everything shares the machine's cores with the load client, so the figures are "
        "noisy (the per-round rates show how much): compare within this run only.\n\n"
        f"| setting | Run/s C={THROUGHPUT_CONCURRENCY} | rounds Run/s | server CPU µs/Run "
        f"| redis-server CPU µs/Run | p50 ms C={LATENCY_CONCURRENCY} "
        f"| p99 ms C={LATENCY_CONCURRENCY} | the primary said |\n" + "|---" * 8 + "|\n"
    ]
    base_wide = pooled(results.throughput[NONE]) if NONE in results.throughput else None
    base_one = pooled(results.latency[NONE]) if NONE in results.latency else None
    for number, (setting, cells) in enumerate(results.throughput.items(), start=1):
        wide = pooled(cells)
        one = pooled(results.latency[setting])
        cpu = wide.per_call_us(wide.server_cpu)
        redis_cpu = wide.per_call_us(wide.redis_cpu)
        base: tuple[float | None, ...] = (None,) * 5
        if base_wide is not None and base_one is not None:
            base = (
                base_wide.rate,
                base_wide.per_call_us(base_wide.server_cpu),
                base_wide.per_call_us(base_wide.redis_cpu),
                base_one.percentile(50),
                base_one.percentile(99),
            )
        out.append(
            f"| ({number}) {setting} | {_with_ratio(wide.rate, base[0])} "
            f"| {', '.join(f'{c.rate:,.0f}' for c in cells)} "
            f"| {_with_ratio(cpu, base[1])} | {_with_ratio(redis_cpu, base[2])} "
            f"| {_with_ratio(one.percentile(50), base[3], 2)} "
            f"| {_with_ratio(one.percentile(99), base[4], 2)} "
            f"| {results.checked.get(setting, '-')} |\n"
        )
    return "".join(out)
