"""``session-server --workers N``: N server processes on one address, about one per core.

One Python process serves from one core. With ``--workers N`` the ``session-server``
process becomes a supervisor that serves nothing itself: it starts N worker processes,
each a whole server (its own event loop, store connection pool and agents) bound to the
same address with SO_REUSEPORT, so that the kernel spreads new connections among them.
The sessions live in Redis, which every worker shares (the settings refuse memory://).

With ``--metrics-address``, the supervisor serves ``/metrics`` for them all: the workers
write their values to files in a directory of the supervisor's (prometheus-client's
multiprocess mode), and a scrape reads their sum.

The supervisor forwards SIGTERM/SIGINT to the workers and waits for them all: each
shuts down gracefully, with ``--shutdown-grace`` for its running calls. If a worker
dies on its own, the supervisor stops the others and exits 1 rather than restarting it:
whatever runs the server (Kubernetes restarting the pod, systemd, a container runtime)
then restarts the whole server, and a worker that cannot start is not restarted in a
tight loop behind its back.

The workers are subprocesses of the same interpreter and package
(``python -m agent_sessions.workers``), not ``multiprocessing`` children, because
``subprocess`` can start each in a process group of its own (``process_group=0``): a
Ctrl-C in a terminal then reaches the supervisor alone, which stops every worker once,
instead of each worker also getting its own SIGINT while it may still be importing.
``multiprocessing`` would add a resource-tracker process too. A worker gets its
settings, already validated by the supervisor, pickled through its stdin (never argv
or the environment: they may hold tokens), and keeps reading stdin: its end means the
supervisor is gone, even killed with SIGKILL, and the worker then stops too instead of
holding the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import shutil
import signal
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from agent_sessions import logs
from agent_sessions.config import Settings
from agent_sessions.observe.metrics import MULTIPROCESS_DIR_ENV, WorkersMetricsEndpoint
from agent_sessions.server import run

log = logging.getLogger(__name__)

# Past its shutdown grace, a worker may still take the store timeout to record the turns
# the grace cut off as CANCELLED, and a moment to close; a worker slower than that is
# killed (SIGKILL).
STOP_MARGIN_S = 5.0
# The length of the pickled settings, before them on the worker's stdin.
_LENGTH = struct.Struct("!Q")


def run_workers(settings: Settings) -> int:
    """Runs ``settings.workers`` server processes until SIGTERM/SIGINT or until one of them
    exits on its own; returns the exit status: 0 once every worker stopped cleanly when
    asked to, else 1."""
    return asyncio.run(_supervise(settings))


async def _supervise(settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    # Installed first: a signal while the workers start stops them once they are started.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    with _workers_metrics(settings) as (environment, metrics):
        return await _run_workers(settings, stop_requested, environment, metrics)


@contextmanager
def _workers_metrics(
    settings: Settings,
) -> Iterator[tuple[Mapping[str, str] | None, WorkersMetricsEndpoint | None]]:
    """The workers' environment and the supervisor's /metrics, with --metrics-address."""
    if settings.metrics_address is None:
        yield None, None
        return
    directory = tempfile.mkdtemp(prefix="session-server-metrics-")
    endpoint = WorkersMetricsEndpoint(settings.metrics_address, directory)
    try:
        endpoint.start()
        yield {**os.environ, MULTIPROCESS_DIR_ENV: directory}, endpoint
    finally:
        endpoint.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def _run_workers(
    settings: Settings,
    stop_requested: asyncio.Event,
    environment: Mapping[str, str] | None,
    metrics: WorkersMetricsEndpoint | None,
) -> int:
    log.info("starting %d workers on %s", settings.workers, settings.address)
    payload = pickle.dumps(settings)
    # Should starting one fail, those already started see their stdin end and stop.
    workers = [await _start_worker(payload, environment) for _ in range(settings.workers)]
    for number, worker in enumerate(workers, 1):
        log.info("worker %d: pid %d", number, worker.pid)
    exits = [asyncio.ensure_future(worker.wait()) for worker in workers]
    stop_wait = asyncio.ensure_future(stop_requested.wait())
    try:
        await asyncio.wait([*exits, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        failed = not stop_requested.is_set()
        if failed:
            for number, worker in enumerate(workers, 1):
                if worker.returncode is not None:
                    log.error(
                        "worker %d (pid %d) exited on its own (%s): stopping the others; "
                        "exiting 1 for the server's supervisor to restart it whole",
                        number,
                        worker.pid,
                        _describe(worker.returncode),
                    )
        else:
            log.info("stopping %d workers", len(workers))
        await _stop(workers, exits, settings)
        if metrics is not None:
            for worker in workers:
                metrics.worker_gone(worker.pid)
    finally:
        stop_wait.cancel()
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
    clean = {0, -signal.SIGTERM}  # -SIGTERM: stopped while still starting up
    if failed or any(worker.returncode not in clean for worker in workers):
        return 1
    log.info("all workers stopped")
    return 0


async def _start_worker(
    payload: bytes, environment: Mapping[str, str] | None
) -> asyncio.subprocess.Process:
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        # -P: no current directory on sys.path, as for the session-server script itself.
        "-P",
        "-m",
        "agent_sessions.workers",
        stdin=asyncio.subprocess.PIPE,
        process_group=0,
        env=environment,
    )
    assert worker.stdin is not None
    # A worker that dies before reading its settings is seen exiting by the supervisor.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        worker.stdin.write(_LENGTH.pack(len(payload)) + payload)
        await worker.stdin.drain()
    return worker


async def _stop(
    workers: list[asyncio.subprocess.Process],
    exits: Sequence[asyncio.Future[int]],
    settings: Settings,
) -> None:
    """Sends SIGTERM to the workers still running, waits for them all, kills stragglers."""
    # SIGTERM for SIGINT too: the workers stop the same way on both, and one still
    # importing simply ends on SIGTERM, where SIGINT would raise KeyboardInterrupt in it.
    for worker in workers:
        if worker.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGTERM)
    limit_s = (
        settings.shutdown_grace.total_seconds()
        + settings.redis_timeout.total_seconds()
        + STOP_MARGIN_S
    )
    _, late = await asyncio.wait(exits, timeout=limit_s)
    if late:
        for number, worker in enumerate(workers, 1):
            if worker.returncode is None:
                log.error(
                    "worker %d (pid %d) did not stop in %.1fs: killing it",
                    number,
                    worker.pid,
                    limit_s,
                )
                with contextlib.suppress(ProcessLookupError):
                    worker.kill()
        await asyncio.wait(exits)


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _read_exactly(fd: int, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError("the supervisor closed stdin before sending the settings")
        data += chunk
    return bytes(data)


def _stop_when_the_supervisor_is_gone(fd: int) -> None:
    # Raw reads: a daemon thread blocked in a buffered sys.stdin would hold its lock
    # while the interpreter shuts down.
    while os.read(fd, 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def worker_main() -> None:
    """One worker: its settings from stdin, then serves until SIGTERM; exits 1 when it
    cannot start (the reason logged), which stops the supervisor and the other workers."""
    stdin = sys.stdin.fileno()
    (size,) = _LENGTH.unpack(_read_exactly(stdin, _LENGTH.size))
    settings: Settings = pickle.loads(_read_exactly(stdin, size))
    threading.Thread(
        target=_stop_when_the_supervisor_is_gone,
        args=(stdin,),
        name="supervisor-watch",
        daemon=True,
    ).start()
    logs.configure(settings.log_level, settings.log_format)
    raise SystemExit(run(settings))


if __name__ == "__main__":
    worker_main()
