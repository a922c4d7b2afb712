"""A throwaway Sentinel-managed Redis on free loopback ports, owned by the tests: a
primary, its replicas and three sentinels that fail it over when it goes silent."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from launchers.redis_processes import RedisProcesses
from launchers.redis_server import free_port


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files every process of a group speaks TLS with (clients need no
    certificate of their own)."""

    cert: Path
    key: Path
    ca: Path


PRIMARY_NAME = "sessions"
"""The name the sentinels monitor the primary under (the URL's ``/primary-name``)."""


class LocalSentinelGroup(RedisProcesses):
    """``replicas`` replicas of one primary, watched by ``sentinels`` sentinels (quorum 2).

    A primary silent for ``down_after_ms`` is failed over: the sentinels promote the
    replica with the most data and point the other replicas at it. Nothing is kept on
    disk (``append_only`` turns AOF on, fsync every second). Every process lives in a
    temporary directory that :meth:`stop` removes.
    """

    def __init__(
        self,
        *,
        replicas: int = 2,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        append_only: bool = False,
        tls: TlsFiles | None = None,
    ) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "redis-server not found: run `make setup` (Debian package redis-server)"
            )
        self.executable = executable
        self.down_after_ms = down_after_ms
        self.append_only = append_only
        self.tls = tls
        super().__init__("sessions-redis-sentinel-")
        ports = _distinct_free_ports(1 + replicas + sentinels)
        self.redis_ports = ports[: 1 + replicas]
        self.sentinel_ports = ports[1 + replicas :]

    def url(self, name: str = PRIMARY_NAME) -> str:
        """The store URL naming every sentinel and the primary's name."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        if self.tls is not None:
            return f"rediss+sentinel://{hosts}/{name}?ssl_ca_certs={self.tls.ca}"
        return f"redis+sentinel://{hosts}/{name}"

    def client(self, port: int) -> redis.Redis:
        """A plain client of one process (Redis or sentinel), for inspecting it."""
        if self.tls is not None:
            return redis.Redis(
                host="127.0.0.1",
                port=port,
                decode_responses=True,
                socket_timeout=5,
                ssl=True,
                ssl_ca_certs=str(self.tls.ca),
            )
        return super().client(port)

    def start(self) -> None:
        try:
            primary, *replicas = self.redis_ports
            self._start_redis(primary, None)
            for port in replicas:
                self._start_redis(port, primary)
            for port in self.sentinel_ports:
                self._start_sentinel(port, primary)
            self.wait_for_replicas()
            for port in self.sentinel_ports:
                self.wait(port, lambda node: self._sentinel_knows_replicas(node), "redis process")
        except BaseException:
            self.stop()
            raise

    def restart(self, port: int) -> None:
        """Starts a stopped Redis again as a replica of the current primary (as an operator
        would; the sentinels would also turn a returning old primary into one)."""
        self._start_redis(port, self.primary())

    def primary(self) -> int:
        """The port of the primary, as the first sentinel that answers says."""
        for port in self.sentinel_ports:
            if port not in self.processes:
                continue
            node = self.client(port)
            try:
                # redis-py's stub says bool; the reply is (host, port).
                address: Any = node.sentinel_get_master_addr_by_name(PRIMARY_NAME)
                primary_port = address[1]
                return int(primary_port)
            except redis.ConnectionError:
                continue
            finally:
                node.close()
        raise LookupError("no sentinel answers")

    def replicas(self) -> list[int]:
        """The ports of the running Redis processes other than the primary."""
        primary = self.primary()
        return [port for port in self.redis_ports if port in self.processes and port != primary]

    def wait_for_failover(self, old_primary: int, timeout_s: float = 30) -> int:
        """Returns the new primary's port once the failover has ended: every running
        sentinel names the same primary, other than ``old_primary``, with no failover in
        progress, and it answers as a master."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            named = {
                self._named_primary(port) for port in self.sentinel_ports if port in self.processes
            }
            if len(named) == 1:
                primary = named.pop()
                if primary not in (None, old_primary) and self.role(primary) == "master":
                    return primary
            time.sleep(0.05)
        raise RuntimeError(f"no replica took over from the primary on port {old_primary}")

    def _named_primary(self, sentinel: int) -> int | None:
        """The primary one sentinel names, or None while it fails one over (or is down)."""
        node = self.client(sentinel)
        try:
            state: Any = node.sentinel_master(PRIMARY_NAME)
        except redis.ConnectionError:
            return None
        finally:
            node.close()
        if "failover_in_progress" in str(state["flags"]):
            return None
        return int(state["port"])

    def wait_for_replicas(self, timeout_s: float = 30) -> None:
        """Returns once every running replica is connected to the primary and in sync."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            primary = self.primary() if self.processes.keys() & set(self.sentinel_ports) else None
            primary = primary or self.redis_ports[0]
            expected = len([p for p in self.redis_ports if p in self.processes and p != primary])
            if (
                self.role(primary) == "master"
                and self.acknowledging(primary, "launcher:probe", expected) >= expected
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("the replicas did not come in sync with the primary")

    def _sentinel_knows_replicas(self, node: redis.Redis) -> bool:
        known = node.sentinel_slaves(PRIMARY_NAME)
        return len(known) >= len(self.redis_ports) - 1

    def _start_redis(self, port: int, primary: int | None) -> None:
        arguments = [
            self.executable,
            *self._listening(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.append_only else "no",
            "--appendfsync",
            "everysec",
            "--appendfilename",
            f"appendonly-{port}.aof",
            "--appenddirname",
            f"aof-{port}",
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.workdir / f"redis-{port}.log"),
        ]
        if primary is not None:
            arguments += ["--replicaof", "127.0.0.1", str(primary)]
        if self.tls is not None:
            arguments += ["--tls-replication", "yes"]
        self.processes[port] = subprocess.Popen(
            arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.wait(port, lambda node: node.ping(), "redis process")

    def _start_sentinel(self, port: int, primary: int) -> None:
        config = self.workdir / f"sentinel-{port}.conf"
        # Sentinel rewrites its config file as it learns the group: one file each.
        listening = self._listening(port)
        config.write_text(
            "\n".join(
                [
                    *(
                        f"{name[2:]} {value}"
                        for name, value in zip(listening[::2], listening[1::2], strict=True)
                    ),
                    *(["tls-replication yes"] if self.tls is not None else []),
                    "bind 127.0.0.1",
                    f"dir {self.workdir}",
                    f"logfile {self.workdir / f'sentinel-{port}.log'}",
                    f"sentinel monitor {PRIMARY_NAME} 127.0.0.1 {primary} 2",
                    f"sentinel down-after-milliseconds {PRIMARY_NAME} {self.down_after_ms}",
                    f"sentinel failover-timeout {PRIMARY_NAME} 10000",
                    f"sentinel parallel-syncs {PRIMARY_NAME} 2",
                    "",
                ]
            )
        )
        self.processes[port] = subprocess.Popen(
            [self.executable, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait(port, lambda node: node.ping(), "redis process")

    def _listening(self, port: int) -> list[str]:
        """The arguments that make a process listen on ``port``: plain, or TLS only."""
        if self.tls is None:
            return ["--port", str(port)]
        return [
            "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
            "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no",
        ]  # fmt: skip


def _distinct_free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)
