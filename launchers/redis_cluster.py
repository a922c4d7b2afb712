"""A throwaway 3-master Redis Cluster on free loopback ports, owned by the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from launchers.redis_processes import RedisProcesses
from launchers.redis_server import free_port


class LocalCluster(RedisProcesses):
    """Three ``redis-server --cluster-enabled yes`` masters joined by ``redis-cli``,
    each with ``replicas`` replicas.

    No persistence: the cluster lives in a temporary directory that :meth:`stop`
    removes. ``node_timeout_ms`` is how long a silent master takes to be marked failed
    (and the cluster to report CLUSTERDOWN, or its replica to take over).
    """

    MASTERS = 3

    def __init__(self, *, node_timeout_ms: int = 15_000, replicas: int = 0) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise RuntimeError(
                "redis-server and redis-cli not found: run `make setup` (Debian package "
                "redis-server, which ships both)"
            )
        self.server_executable, self.cli_executable = server, cli
        self.node_timeout_ms = node_timeout_ms
        self.replicas = replicas
        self.ports: list[int] = []
        super().__init__("sessions-redis-cluster-")

    @property
    def url(self) -> str:
        """The store URL naming every master as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> None:
        try:
            self.ports = self._distinct_free_ports()
            for port in self.ports:
                self._start_node(port)
            for port in self.ports:
                self.wait(port, lambda node: node.ping(), "cluster node")
            subprocess.run(
                [
                    self.cli_executable,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{port}" for port in self.ports),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
            for port in self.ports:
                self.wait(
                    port, lambda node: node.cluster("info")["cluster_state"] == "ok", "cluster node"
                )
            if self.replicas:
                self.wait_for_replicas()
        except BaseException:
            self.stop()
            raise

    def restart(self, port: int) -> None:
        """Starts a stopped node again: it rejoins (its nodes file remains), empty."""
        self._start_node(port)
        self.wait(port, lambda node: node.ping(), "cluster node")

    def masters(self) -> list[int]:
        """The ports of the running masters, as the cluster says now."""
        return [port for port in self.processes if self.role(port) == "master"]

    def replicas_of(self, master: int) -> list[int]:
        """The ports of the running replicas of one master."""
        return [
            port
            for port in self.processes
            if port != master and self.role(port) == "slave" and self._master_of(port) == master
        ]

    def wait_for_replicas(self, timeout_s: float = 30) -> None:
        """Returns once every master has its replicas connected and in sync."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            masters = self.masters()
            if len(masters) == self.MASTERS and all(
                self.acknowledging(port, self._key_served_by(port), self.replicas) >= self.replicas
                for port in masters
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster's replicas did not come in sync")

    def _master_of(self, port: int) -> int:
        node = self.client(port)
        try:
            return int(node.info("replication")["master_port"])
        finally:
            node.close()

    def _key_served_by(self, port: int) -> str:
        node = self.client(port)
        try:
            ranges = [
                (int(start), int(end))
                for start, end, master, *_ in node.cluster("slots")
                if int(master[1]) == port
            ]
            for n in range(100_000):
                key = f"launcher:probe:{n}"
                slot = int(node.cluster("keyslot", key))
                if any(start <= slot <= end for start, end in ranges):
                    return key
        finally:
            node.close()
        raise LookupError(f"no slot is served by port {port}")

    def is_ok(self) -> bool:
        """Whether every running node says cluster_state:ok."""
        for port in self.processes:
            node = self.client(port)
            try:
                if node.cluster("info")["cluster_state"] != "ok":
                    return False
            finally:
                node.close()
        return True

    def keys_on(self, port: int, pattern: str) -> list[str]:
        """The keys of one node that match ``pattern`` (SCAN with MATCH)."""
        node = self.client(port)
        try:
            return [str(key) for key in node.scan_iter(match=pattern, count=1000)]
        finally:
            node.close()

    def migrate(self, key: str) -> SlotMigration:
        """Starts moving the slot of ``key`` to another master, as resharding does."""
        source = self.owner(key)
        target = next(port for port in self.ports if port != source)
        node = self.client(source)
        try:
            slot = int(node.cluster("keyslot", key))
        finally:
            node.close()
        migration = SlotMigration(self, slot, source, target)
        migration.command(target, "SETSLOT", slot, "IMPORTING", self.node_id(source))
        migration.command(source, "SETSLOT", slot, "MIGRATING", self.node_id(target))
        return migration

    def owner(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot, as the first running node
        that answers says."""
        for port in list(self.processes):
            node = self.client(port)
            try:
                slot = int(node.cluster("keyslot", key))
                for start, end, master, *_ in node.cluster("slots"):
                    if start <= slot <= end:
                        return int(master[1])
            except redis.ConnectionError:
                continue
            finally:
                node.close()
        raise LookupError(f"no running node names a master for the slot of {key!r}")

    def node_id(self, port: int) -> str:
        node = self.client(port)
        try:
            return str(node.cluster("myid"))
        finally:
            node.close()

    def _distinct_free_ports(self) -> list[int]:
        # A node also listens on its port + 10000 (the cluster bus): both must be free.
        ports: set[int] = set()
        while len(ports) < self.MASTERS * (1 + self.replicas):
            port = free_port()
            if port + 10000 <= 65535 and _is_free(port + 10000):
                ports.add(port)
        return sorted(ports)

    def _start_node(self, port: int) -> None:
        self.processes[port] = subprocess.Popen(
            [
                self.server_executable,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.workdir / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--appendonly",
                "no",
                "--save",
                "",
                # Replicas sync over the socket at once, not through a file on disk.
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / f"redis-{port}.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@dataclass
class SlotMigration:
    """A slot on its way from the ``source`` master to the ``target`` one."""

    cluster: LocalCluster
    slot: int
    source: int
    target: int

    def keys(self) -> list[str]:
        """The keys of the slot still on the source."""
        return [str(key) for key in self.command(self.source, "GETKEYSINSLOT", self.slot, 1000)]

    def move(self, keys: Iterable[str]) -> None:
        """Moves these keys of the slot to the target (MIGRATE)."""
        node = self.cluster.client(self.source)
        try:
            node.migrate("127.0.0.1", self.target, list(keys), 0, 5000)
        finally:
            node.close()

    def finish(self) -> None:
        """Moves the rest of the keys, then gives the slot to the target on every node."""
        if rest := self.keys():
            self.move(rest)
        target_id = self.cluster.node_id(self.target)
        for port in self.cluster.ports:
            self.command(port, "SETSLOT", self.slot, "NODE", target_id)

    def command(self, port: int, *args: str | int) -> list[str]:
        node = self.cluster.client(port)
        try:
            reply = node.cluster(*args)
        finally:
            node.close()
        return reply if isinstance(reply, list) else []


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
