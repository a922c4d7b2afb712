"""Prometheus metrics in a registry of the server's own: the calls (counted by
:mod:`agent_sessions.api.metrics`), the agents' turns and compactions (observed from the
session logic), the store's calls (:mod:`agent_sessions.store.metered`), and the
``/metrics`` endpoint that serves them.

The hot path costs a few dictionary lookups, two clock reads and two locked additions
per call: label children are made once per method (and code, agent, store operation)
and kept.

With ``--workers N`` the values go to files (prometheus-client's multiprocess mode: the
supervisor gives each worker ``PROMETHEUS_MULTIPROC_DIR``), and the supervisor alone
serves ``/metrics``, their sum (:class:`WorkersMetricsEndpoint`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    multiprocess,
    start_http_server,
)

from agent_sessions.config import split_host_port
from agent_sessions.model import Session, Turn
from agent_sessions.sessions.observers import AgentOutcome

log = logging.getLogger(__name__)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set (by the supervisor of ``--workers``): this process writes its values there, and
does not serve them."""


def in_worker() -> bool:
    """Whether this process is a worker whose metrics its supervisor serves."""
    return bool(os.environ.get(MULTIPROCESS_DIR_ENV))


# From a millisecond read to a long agent turn (the default run timeout is 5 minutes).
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
# A store call: from a tenth of a millisecond (memory, a near Redis) to a Redis timeout.
STORE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class SessionMetrics:
    """The service's metrics in a registry of their own, so servers do not collide; it
    observes the session logic (agent turns, compactions) as a SessionObserver."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if not in_worker():
            # A worker's process figures would be summed with the others': meaningless.
            ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "sessions_rpc_requests",
            "SessionService calls finished, by method and status code.",
            ("method", "code"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "sessions_rpc_duration_seconds",
            "SessionService call duration (a Run: until its last event is sent), by method.",
            ("method",),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.runs_in_flight = Gauge(
            "sessions_runs_in_flight",
            "Run calls being served now.",
            registry=self.registry,
            multiprocess_mode="livesum",  # the live workers' sum
        )
        self.agent_turns = Counter(
            "sessions_agent_turns",
            "Turns an agent was asked for, by agent and outcome (completed, failed, cancelled).",
            ("agent_id", "outcome"),
            registry=self.registry,
        )
        self.agent_duration = Histogram(
            "sessions_agent_turn_duration_seconds",
            "Time from calling the agent to the end of its turn (completed or failed; "
            "not cancelled), by agent.",
            ("agent_id",),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.store_duration = Histogram(
            "sessions_store_duration_seconds",
            "Session store call duration, by operation (ordinary refusals such as a "
            "missing session included).",
            ("operation",),
            buckets=STORE_BUCKETS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "sessions_store_errors",
            "Session store calls that failed in the backend (StoreUnavailable) or with an "
            "unexpected exception (its class name), by operation and error.",
            ("operation", "error"),
            registry=self.registry,
        )
        self.sessions_created = Counter(
            "sessions_created",
            "Sessions created: CreateSession and ImportSession calls answered OK.",
            registry=self.registry,
        )
        self.sessions_ended = Counter(
            "sessions_ended",
            "Sessions ended or deleted: EndSession and DeleteSession calls answered OK "
            "(expirations are not counted).",
            registry=self.registry,
        )
        self.folded_turns = Counter(
            "sessions_folded_turns",
            "Turns folded into session summaries, by CompressSession or after a turn.",
            registry=self.registry,
        )
        self._turns: dict[tuple[str, str], Any] = {}
        self._durations: dict[str, Any] = {}

    def turn_started(self, *, agent: str, session_id: str, turn_index: int) -> None:
        pass

    def agent_finished(self, *, agent: str, outcome: AgentOutcome, seconds: float) -> None:
        turns = self._turns.get((agent, outcome))
        if turns is None:
            turns = self._turns[agent, outcome] = self.agent_turns.labels(agent, outcome)
        turns.inc()
        # A cancelled turn is not timed: it lasted as long as its caller waited.
        if outcome != "cancelled":
            duration = self._durations.get(agent)
            if duration is None:
                duration = self._durations[agent] = self.agent_duration.labels(agent)
            duration.observe(seconds)

    def turn_committed(self, *, agent: str, turn: Turn, session: Session) -> None:
        pass

    def compacted(self, *, session: Session, folded_turns: int, summarizer: str) -> None:
        self.folded_turns.inc(folded_turns)


class MetricsEndpoint:
    """``/metrics`` over HTTP, served by prometheus-client's threaded WSGI server."""

    def __init__(self, metrics: SessionMetrics, address: str) -> None:
        self._metrics = metrics
        self._address = address
        self._httpd: WSGIServer | None = None
        self.port = 0

    def start(self) -> None:
        host, port = split_host_port(self._address)
        self._httpd, _thread = start_http_server(port, addr=host, registry=self._metrics.registry)
        self.port = self._httpd.server_port
        log.info("serving Prometheus metrics on http://%s:%d/metrics", host, self.port)

    async def stop(self) -> None:
        """Stops serving and closes the socket (shutdown waits up to half a second for
        the serving thread, hence a thread of its own)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        await asyncio.to_thread(httpd.shutdown)
        httpd.server_close()


class WorkersMetricsEndpoint:
    """``/metrics`` of the supervisor of ``--workers``: the sum of its workers' values,
    read from ``directory`` (their ``PROMETHEUS_MULTIPROC_DIR``) at each scrape."""

    def __init__(self, address: str, directory: str) -> None:
        self._address = address
        self._directory = directory
        self._httpd: WSGIServer | None = None

    def start(self) -> None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self._directory)  # type: ignore[no-untyped-call]
        host, port = split_host_port(self._address)
        self._httpd, _thread = start_http_server(port, addr=host, registry=registry)
        log.info("serving the workers' Prometheus metrics on http://%s:%d/metrics", host, port)

    def worker_gone(self, pid: int) -> None:
        """Drops a stopped worker's live gauges (its counters keep counting in the sum)."""
        multiprocess.mark_process_dead(pid, path=self._directory)  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
