"""The metrics of SessionService calls: an interceptor counts and times every call."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
from prometheus_client import Counter

from agent_sessions.api.handlers import Behaviour, ServiceInterceptor
from agent_sessions.api.status import aborted_code
from agent_sessions.observe.metrics import SessionMetrics

# The calls that, when they answer OK, made a session or ended one.
CREATING_METHODS = frozenset({"CreateSession", "ImportSession"})
ENDING_METHODS = frozenset({"EndSession", "DeleteSession"})


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
        # A Run is a call like the others, and counts towards the runs in flight; its
        # agent's turn is observed by the session logic.
        call = self._call(timed, behaviour)
        in_flight = self._metrics.runs_in_flight

        async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            in_flight.inc()
            try:
                return await call(request, context)
            finally:
                in_flight.dec()

        return run
