"""A throwaway ``redis-server`` process on a free loopback port, owned by the tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """Starts, stops and restarts one redis-server; with ``append_only`` data survives a restart."""

    def __init__(self, port: int | None = None, *, append_only: bool = False) -> None:
        self.append_only = append_only
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "redis-server not found: run `make setup` (Debian package redis-server)"
            )
        self.executable = executable
        self.port = port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="sessions-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.append_only else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """Stops it abruptly (SIGKILL), as a crash would: only what was on disk survives."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
