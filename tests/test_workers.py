"""``session-server --workers N``: N server processes on one port, under one supervisor.

The processes and their sockets are read from /proc, so these tests need Linux.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from agentsessions.sessions.v1 import sessions_pb2_grpc

from launchers.redis_server import RedisServer, free_port
from tests.processes import wait_until_serving

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="reads processes and sockets from /proc"
)

SESSION_SERVER = str(Path(sys.executable).parent / "session-server")
GRACE_S = 1.0
_LISTEN, _ESTABLISHED = "0A", "01"


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running: neither gone nor a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _server_sockets(port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets on local port ``port`` in ``state`` (gRPC listens on
    127.0.0.1 through an IPv6 socket, as ::ffff:127.0.0.1)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == state:
                inodes.add(int(fields[9]))
    return inodes


def _sockets_per_process(pids: set[int], port: int, state: str) -> dict[int, int]:
    wanted = _server_sockets(port, state)
    return {pid: len(_socket_inodes(pid) & wanted) for pid in pids}


@dataclass
class Supervisor:
    process: subprocess.Popen[bytes]
    address: str
    port: int
    log_file: Path

    @property
    def log(self) -> str:
        return self.log_file.read_text()

    def wait_for_workers(self, count: int = 2, timeout_s: float = 15) -> set[int]:
        """The workers' pids, once ``count`` of them listen on the port."""
        wait_until_serving(self.address, timeout_s)
        deadline = time.monotonic() + timeout_s
        while True:
            workers = _children(self.process.pid)
            listening = _sockets_per_process(workers, self.port, _LISTEN)
            if sum(1 for n in listening.values() if n) == count == len(workers):
                return workers
            assert time.monotonic() < deadline, f"workers {listening}, log:\n{self.log}"
            time.sleep(0.05)


@contextmanager
def supervisor(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path, *extra: str
) -> Iterator[Supervisor]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    log_file = tmp_path / "session-server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [
                SESSION_SERVER,
                "--workers=2",
                f"--store={redis_server.url}",
                f"--key-prefix={key_prefix}",
                f"--address={address}",
                f"--shutdown-grace={GRACE_S}",
                "--health-check-interval=100ms",
                "--default-agent=echo",
                *extra,
            ],
            stderr=log,
        )
    running = Supervisor(process, address, port, log_file)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _exits_within(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    started = time.monotonic()
    returncode = process.wait(timeout=timeout_s)
    assert time.monotonic() - started < timeout_s
    return returncode


def _gone(pids: set[int], timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_two_workers_serve_one_port_and_share_the_sessions(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    with supervisor(redis_server, key_prefix, tmp_path) as server:
        workers = server.wait_for_workers()
        # A local subchannel pool: a connection of its own per channel, not one shared.
        channels = [
            grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(24)
        ]
        try:
            stubs = [sessions_pb2_grpc.SessionServiceStub(channel) for channel in channels]
            created = stubs[0].CreateSession(
                pb.CreateSessionRequest(user_id="user-1", agent_id="echo"), timeout=5
            )
            read = [
                stub.GetSession(
                    pb.GetSessionRequest(user_id="user-1", session_id=created.session_id),
                    timeout=5,
                )
                for stub in stubs
            ]
            connections = _sockets_per_process(workers, server.port, _ESTABLISHED)
        finally:
            for channel in channels:
                channel.close()

    assert [session.session_id for session in read] == [created.session_id] * len(stubs)
    # The kernel spread the 24 connections over both workers (all on one: p = 2**-23).
    assert sorted(connections) == sorted(workers)
    assert all(connections.values()), connections
    assert server.process.returncode == 0


def test_the_supervisor_serves_the_sum_of_its_workers_metrics(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    metrics = f"--metrics-address=127.0.0.1:{metrics_port}"
    with supervisor(redis_server, key_prefix, tmp_path, metrics) as server:
        workers = server.wait_for_workers()
        channels = [
            grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(24)
        ]
        try:
            stubs = [sessions_pb2_grpc.SessionServiceStub(channel) for channel in channels]
            for stub in stubs:
                stub.CreateSession(pb.CreateSessionRequest(user_id="user-1", agent_id="echo"))
            connections = _sockets_per_process(workers, server.port, _ESTABLISHED)
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as answer:
                scraped = answer.read().decode()
        finally:
            for channel in channels:
                channel.close()

    created = re.search(
        r'^sessions_rpc_requests_total\{code="OK",method="CreateSession"\} (\S+)$',
        scraped,
        re.MULTILINE,
    )
    # Both workers served some of the 24 calls, and /metrics counts them all.
    assert all(connections.values()) and len(connections) == 2, connections
    assert created is not None, scraped
    assert float(created.group(1)) == 24


def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    with supervisor(redis_server, key_prefix, tmp_path) as server:
        workers = server.wait_for_workers()
        server.process.send_signal(signal.SIGTERM)
        returncode = _exits_within(server.process, GRACE_S + 5)

    assert returncode == 0
    assert _gone(workers, timeout_s=0)
    assert server.log.count("shutting down") == 2, server.log


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--store=memory://", "--address=127.0.0.1:50051"], "--workers 2 needs a shared store"),
        (["--store=redis://127.0.0.1:1/0", "--address=127.0.0.1:0"], "needs a fixed port"),
    ],
    ids=["memory-store", "port-0"],
)
def test_what_workers_cannot_share_is_refused_before_any_starts(
    args: list[str], named: str
) -> None:
    result = subprocess.run(
        [SESSION_SERVER, "--workers=2", *args], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 2
    assert result.stderr.startswith("session-server: ")
    assert named in result.stderr


def test_workers_that_cannot_listen_make_the_supervisor_exit_1_saying_why() -> None:
    # Held without SO_REUSEPORT: the workers, which set it, cannot share the port.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        result = subprocess.run(
            [
                SESSION_SERVER,
                "--workers=2",
                "--store=redis://127.0.0.1:1/0",
                f"--address={address}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert result.returncode == 1
    assert f"cannot listen on {address}: address already in use" in result.stderr
    assert "exited on its own (exit status 1)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_killed_worker_makes_the_supervisor_stop_the_other_and_fail(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    with supervisor(redis_server, key_prefix, tmp_path) as server:
        killed, other = sorted(server.wait_for_workers())
        os.kill(killed, signal.SIGKILL)
        returncode = _exits_within(server.process, GRACE_S + 5)

    assert returncode == 1
    assert _gone({killed, other}, timeout_s=0)
    assert f"(pid {killed}) exited on its own (killed by SIGKILL)" in server.log
    assert server.log.count("shutting down") == 1, server.log


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(
    redis_server: RedisServer, key_prefix: str, tmp_path: Path
) -> None:
    with supervisor(redis_server, key_prefix, tmp_path) as server:
        workers = server.wait_for_workers()
        server.process.kill()
        server.process.wait(timeout=5)

        assert _gone(workers, timeout_s=GRACE_S + 5), server.log
    assert server.log.count("shutting down") == 2, server.log
