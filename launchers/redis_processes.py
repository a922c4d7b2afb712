"""What the multi-process Redis launchers share: their processes by port, in a temporary
directory of their own, and how to stop, kill, freeze and wait for one."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis


class RedisProcesses:
    """Redis processes by port, living in ``workdir`` (removed by :meth:`stop`)."""

    def __init__(self, prefix: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def client(self, port: int) -> redis.Redis:
        """A plain client of one process, for inspecting it."""
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=5)

    def stop(self) -> None:
        """Stops every process still running and removes the directory."""
        for port in list(self.processes):
            self.kill(port, gracefully=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def kill(self, port: int, *, gracefully: bool = False) -> None:
        """Stops one process, abruptly (SIGKILL, as a crash) unless ``gracefully``: it
        stays down."""
        process = self.processes.pop(port)
        if gracefully:
            process.terminate()
        else:
            process.kill()
        process.wait(timeout=10)

    def pause(self, port: int) -> None:
        """Freezes one process (SIGSTOP), as a stalled host would: its peers wait on it."""
        self.processes[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        """Lets a paused process go on (SIGCONT)."""
        self.processes[port].send_signal(signal.SIGCONT)

    def role(self, port: int) -> str:
        """``master``, ``slave`` (a replica), or ``down``."""
        node = self.client(port)
        try:
            return str(node.info("replication")["role"])
        except redis.ConnectionError:
            return "down"
        finally:
            node.close()

    def acknowledging(self, port: int, key: str, wanted: int) -> int:
        """How many replicas of the primary on ``port`` confirm a write of ``key`` now
        (WAIT, up to ``wanted``): a replica synced a moment ago is online but streams only
        after its first acknowledgement, up to a second on."""
        node = self.client(port)
        try:
            node.set(key, 1, px=1000)
            return int(node.wait(wanted, 100))
        except (redis.ConnectionError, redis.ResponseError):
            return 0
        finally:
            node.close()

    def wait(self, port: int, ready: Callable[[redis.Redis], object], what: str) -> None:
        """Returns once ``ready`` of a client of ``port`` is true; raises after 15 s."""
        deadline = time.monotonic() + 15
        node = self.client(port)
        try:
            while True:
                try:
                    if ready(node):
                        return
                except (redis.ConnectionError, redis.ResponseError, KeyError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what} on port {port} did not become ready")
                time.sleep(0.05)
        finally:
            node.close()
