"""Prometheus metrics: a server interceptor timing every SessionService call, the
agents' turns, the store's calls (:mod:`agent_sessions.store.metered`), and the
``/metrics`` endpoint that serves them from the server's own registry.

The hot path costs a few dictionary lookups, two clock reads and two locked additions
per call: label children are made once per method (and code, agent, store operation)
and kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from agent_sessions.agents import AgentRegistry
from agent_sessions.agents.registry import ConfiguredAgent
from agent_sessions.api.handlers import Behaviour, ServiceInterceptor
from agent_sessions.api.status import aborted_code

log = logging.getLogger(__name__)

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
OTHER_AGENT = "other"
# The calls that, when they answer OK, made a session or ended one.
CREATING_METHODS = frozenset({"CreateSession", "ImportSession"})
ENDING_METHODS = frozenset({"EndSession", "DeleteSession"})


class _RunNote:
    """What one Run learns about its turn: the agent label (from the agent registry),
    when the agent was called (likewise) and when it was done (from the store, as the
    turn's outcome starts being written)."""

    __slots__ = ("agent", "ended", "started")

    def __init__(self) -> None:
        self.agent: str | None = None
        self.started: float | None = None
        self.ended: float | None = None


# Set by the Run wrapper in the call's own task; the SessionManager resolves the agent
# in that same task, so the registry can note the agent there without any lookup.
_current_run: ContextVar[_RunNote | None] = ContextVar("_current_run", default=None)


class MeteredAgentRegistry(AgentRegistry):
    """An AgentRegistry that tells the current Run which agent answers its turn.

    The label is the configured agent id, or the default agent's for ids it answers
    (client-chosen ids must not make new label values).
    """

    def resolve(self, agent_id: str) -> ConfiguredAgent | None:
        configured = super().resolve(agent_id)
        note = _current_run.get()
        if note is not None:
            if agent_id in self._agents:
                note.agent = agent_id
            else:
                note.agent = self._default or OTHER_AGENT
            # Once: a compaction the Run starts inherits its note and resolves again.
            if configured is not None and note.started is None:
                note.started = time.perf_counter()
        return configured


class SessionMetrics:
    """The service's metrics in a registry of their own, so servers do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self._turns: dict[tuple[str, str], Any] = {}
        self._durations: dict[str, Any] = {}

    def turn_finished(self, agent: str, outcome: str) -> None:
        child = self._turns.get((agent, outcome))
        if child is None:
            child = self._turns[agent, outcome] = self.agent_turns.labels(agent, outcome)
        child.inc()

    def turn_timed(self, agent: str, seconds: float) -> None:
        child = self._durations.get(agent)
        if child is None:
            child = self._durations[agent] = self.agent_duration.labels(agent)
        child.observe(seconds)

    @staticmethod
    def agent_done() -> None:
        """Notes, in a Run, that its agent is done: the store calls it as it starts
        writing the turn's outcome (outside a Run, or before any agent, it does nothing)."""
        note = _current_run.get()
        if note is not None and note.started is not None and note.ended is None:
            note.ended = time.perf_counter()


class _Method:
    """One method's label children, made once."""

    __slots__ = ("codes", "duration", "name", "requests", "sessions")

    def __init__(self, metrics: SessionMetrics, name: str) -> None:
        self.name = name
        self.requests = metrics.requests
        self.duration = metrics.duration.labels(name)
        self.codes: dict[grpc.StatusCode, Any] = {}
        # What an OK answer counts besides the call: a session made or ended.
        self.sessions: Counter | None = None
        if name in CREATING_METHODS:
            self.sessions = metrics.sessions_created
        elif name in ENDING_METHODS:
            self.sessions = metrics.sessions_ended

    def finished(self, code: grpc.StatusCode, seconds: float) -> None:
        child = self.codes.get(code)
        if child is None:
            child = self.codes[code] = self.requests.labels(self.name, code.name)
        child.inc()
        self.duration.observe(seconds)
        if self.sessions is not None and code is grpc.StatusCode.OK:
            self.sessions.inc()


class MetricsInterceptor(ServiceInterceptor):
    """Counts and times every SessionService call, the UNAUTHENTICATED ones included when
    it runs before the token check. Health checks and reflection are not counted: probes
    would drown the service's own calls, and a health Watch lasts as long as its caller."""

    def __init__(self, metrics: SessionMetrics) -> None:
        super().__init__()
        self._metrics = metrics
        self._methods: dict[str, _Method] = {}

    def wrap(self, method: str, behaviour: Behaviour) -> Behaviour:
        timed = self._methods.get(method)
        if timed is None:
            timed = self._methods[method] = _Method(self._metrics, method)
        if method == "Run":
            return self._run(timed, behaviour)
        return self._call(timed, behaviour)

    @staticmethod
    def _call(timed: _Method, behaviour: Behaviour) -> Behaviour:
        clock = time.perf_counter
        ok = grpc.StatusCode.OK

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = clock()
            try:
                response = await behaviour(request, context)
            except asyncio.CancelledError:
                timed.finished(grpc.StatusCode.CANCELLED, clock() - started)
                raise
            except BaseException:
                timed.finished(aborted_code(context), clock() - started)
                raise
            timed.finished(ok, clock() - started)
            return response

        return call

    def _run(self, timed: _Method, behaviour: Behaviour) -> Behaviour:
        clock = time.perf_counter
        ok = grpc.StatusCode.OK
        cancelled = grpc.StatusCode.CANCELLED
        metrics = self._metrics
        in_flight = metrics.runs_in_flight

        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            note = _RunNote()
            _current_run.set(note)  # the call's own task: nothing to reset
            in_flight.inc()
            started = clock()
            code = ok
            try:
                return await behaviour(request, context)
            except asyncio.CancelledError:
                code = cancelled
                raise
            except BaseException:
                code = aborted_code(context)
                raise
            finally:
                in_flight.dec()
                ended = clock()
                timed.finished(code, ended - started)
                agent = note.agent
                if agent is not None:  # the turn reached an agent (not a replay)
                    if code is ok:
                        outcome = "completed"
                    elif code is cancelled:
                        outcome = "cancelled"
                    else:
                        outcome = "failed"
                    metrics.turn_finished(agent, outcome)
                    # A cancelled turn is not timed: it lasted as long as its caller waited.
                    if note.started is not None and code is not cancelled:
                        done = ended if note.ended is None else note.ended
                        metrics.turn_timed(agent, done - note.started)

        return run


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) as the host and the port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class MetricsEndpoint:
    """``/metrics`` over HTTP, served by prometheus-client's threaded WSGI server."""

    def __init__(self, metrics: SessionMetrics, address: str) -> None:
        self._metrics = metrics
        self._address = address
        self._httpd: WSGIServer | None = None
        self.port = 0

    def start(self) -> None:
        host, port = parse_address(self._address)
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
