"""OpenTelemetry tracing (the ``otel`` extra), off unless ``--otel-traces`` asks for it.

A server span per SessionService call, continuing the caller's trace when its metadata
carries a W3C ``traceparent``, with a child span per Redis command or script (the
``opentelemetry-instrumentation-redis`` package). Spans go to an OTLP collector named by
the standard ``OTEL_EXPORTER_OTLP_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
default ``http://localhost:4317``), or to stdout as JSON (``console``, for debugging);
``OTEL_SERVICE_NAME`` names the service (default ``session-server``).

The session logic's moments (turn started, agent finished, turn committed, compaction)
are events on the current call's span, from :class:`TracingObserver`.

The call spans come from an interceptor (:mod:`agent_sessions.api.tracing`) rather than from
``opentelemetry-instrumentation-grpc``: that one's grpc.aio interceptor expects a
streaming handler to be an async generator, and ``Run`` writes its events with
``context.write`` (it fails every Run with a TypeError).
"""

from __future__ import annotations

import os

from agent_sessions.model import Session, Turn
from agent_sessions.sessions.observers import AgentOutcome

EXTRA_HINT = "pip install 'agent-sessions[otel]'"


class Tracing:
    """The tracer provider (its ``tracer`` makes the call spans of
    :mod:`agent_sessions.api.tracing`) and the Redis instrumentation; :meth:`shutdown`
    flushes the spans and undoes the instrumentation."""

    def __init__(self, exporter_name: str) -> None:
        try:
            from opentelemetry.instrumentation.redis import RedisInstrumentor
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                ConsoleSpanExporter,
                SimpleSpanProcessor,
            )
        except ImportError as error:
            raise RuntimeError(
                f"--otel-traces {exporter_name} needs the OpenTelemetry packages: {EXTRA_HINT} "
                f"({error})"
            ) from None
        name = os.environ.get("OTEL_SERVICE_NAME", "session-server")
        self._provider = TracerProvider(resource=Resource({SERVICE_NAME: name}))
        if exporter_name == "console":
            # Written as each span ends, so that nothing waits in a batch on stdout.
            self._provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        # Given the provider rather than made the global one: this server's spans,
        # without touching whatever else the process traces.
        self._redis = RedisInstrumentor()
        self._redis.instrument(tracer_provider=self._provider)
        self.tracer = self._provider.get_tracer(__name__)

    def shutdown(self) -> None:
        self._redis.uninstrument()
        self._provider.shutdown()


class TracingObserver:
    """Adds the session logic's moments as events to the span of the call they happen in
    (a compaction in the background has no recording span, and adds nothing)."""

    def __init__(self) -> None:
        from opentelemetry import trace

        self._current_span = trace.get_current_span

    def _event(self, name: str, attributes: dict[str, str | int | float]) -> None:
        span = self._current_span()
        if span.is_recording():
            span.add_event(name, attributes)

    def turn_started(self, *, agent: str, session_id: str, turn_index: int) -> None:
        self._event("turn started", {"agent_id": agent, "turn_index": turn_index})

    def agent_finished(self, *, agent: str, outcome: AgentOutcome, seconds: float) -> None:
        self._event("agent finished", {"agent_id": agent, "outcome": outcome, "seconds": seconds})

    def turn_committed(self, *, agent: str, turn: Turn, session: Session) -> None:
        self._event("turn committed", {"turn_index": turn.index, "turn_count": session.turn_count})

    def compacted(self, *, session: Session, folded_turns: int, summarizer: str) -> None:
        self._event("compacted", {"folded_turns": folded_turns, "summarizer": summarizer})
