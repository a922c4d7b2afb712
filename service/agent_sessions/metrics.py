"""Prometheus metrics: a server interceptor timing every SessionService call, and the
``/metrics`` endpoint that serves them from the server's own registry.

The hot path costs a few dictionary lookups, two clock reads and two locked additions
per call: label children are made once per method (and code) and kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
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

if TYPE_CHECKING:  # generic in the type stubs only
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.aio.ServerInterceptor

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/sessions.v1.SessionService/"
RUN_METHOD = SERVICE_PREFIX + "Run"
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
OTHER_AGENT = "other"

Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class _RunNote:
    """What the agent registry learns during one Run: the agent label of its turn."""

    __slots__ = ("agent",)

    def __init__(self) -> None:
        self.agent: str | None = None


# Set by the Run wrapper in the call's own task; the SessionManager resolves the agent
# in that same task, so the registry can note the agent there without any lookup.
_current_run: ContextVar[_RunNote | None] = ContextVar("_current_run", default=None)


class MeteredAgentRegistry(AgentRegistry):
    """An AgentRegistry that tells the current Run which agent answers its turn.

    The label is the configured agent id, or the default agent's for ids it answers
    (client-chosen ids must not make new label values).
    """

    def resolve(self, agent_id: str) -> ConfiguredAgent | None:
        note = _current_run.get()
        if note is not None:
            if agent_id in self._agents:
                note.agent = agent_id
            else:
                note.agent = self._default or OTHER_AGENT
        return super().resolve(agent_id)


def _code_of(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """The status an aborted call ends with: what ``abort`` set, else UNKNOWN."""
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code
    return grpc.StatusCode.UNKNOWN


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
        self._turns: dict[tuple[str, str], Any] = {}

    def turn_finished(self, agent: str, outcome: str) -> None:
        child = self._turns.get((agent, outcome))
        if child is None:
            child = self._turns[agent, outcome] = self.agent_turns.labels(agent, outcome)
        child.inc()


class _Method:
    """One method's label children, made once."""

    __slots__ = ("codes", "duration", "name", "requests")

    def __init__(self, metrics: SessionMetrics, name: str) -> None:
        self.name = name
        self.requests = metrics.requests
        self.duration = metrics.duration.labels(name)
        self.codes: dict[grpc.StatusCode, Any] = {}

    def finished(self, code: grpc.StatusCode, seconds: float) -> None:
        child = self.codes.get(code)
        if child is None:
            child = self.codes[code] = self.requests.labels(self.name, code.name)
        child.inc()
        self.duration.observe(seconds)


class MetricsInterceptor(ServerInterceptor):
    """Counts and times every SessionService call, the UNAUTHENTICATED ones included when
    it runs before the token check. Health checks and reflection are not counted: probes
    would drown the service's own calls, and a health Watch lasts as long as its caller."""

    def __init__(self, metrics: SessionMetrics) -> None:
        self._metrics = metrics
        # method -> (the handler wrapped, its wrapper): the next interceptors return the
        # same handler for a method unless they answer the call themselves.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], Any]] = {}
        self._methods: dict[str, _Method] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            wrapped: grpc.RpcMethodHandler[Any, Any] = cached[1]
            return wrapped
        wrapped = self._wrap(method, handler)
        if cached is None:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _method(self, method: str) -> _Method:
        found = self._methods.get(method)
        if found is None:
            found = self._methods[method] = _Method(self._metrics, method[len(SERVICE_PREFIX) :])
        return found

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        kind, behaviour = next(
            (name, getattr(handler, name))
            for name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
            if getattr(handler, name) is not None
        )
        timed = self._method(method)
        if method == RUN_METHOD:
            wrapper = self._run(timed, behaviour)
        else:
            wrapper = self._call(timed, behaviour)
        replaced: grpc.RpcMethodHandler[Any, Any] = handler._replace(  # type: ignore[attr-defined]
            **{kind: wrapper}
        )
        return replaced

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
                timed.finished(_code_of(context), clock() - started)
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
                code = _code_of(context)
                raise
            finally:
                in_flight.dec()
                timed.finished(code, clock() - started)
                if note.agent is not None:  # the turn reached an agent (not a replay)
                    if code is ok:
                        outcome = "completed"
                    elif code is cancelled:
                        outcome = "cancelled"
                    else:
                        outcome = "failed"
                    metrics.turn_finished(note.agent, outcome)

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
