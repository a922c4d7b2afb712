"""OpenTelemetry tracing (the ``otel`` extra), off unless ``--otel-traces`` asks for it.

A server span per SessionService call, continuing the caller's trace when its metadata
carries a W3C ``traceparent``, with a child span per Redis command or script (the
``opentelemetry-instrumentation-redis`` package). Spans go to an OTLP collector named by
the standard ``OTEL_EXPORTER_OTLP_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
default ``http://localhost:4317``), or to stdout as JSON (``console``, for debugging);
``OTEL_SERVICE_NAME`` names the service (default ``session-server``).

The call spans come from an interceptor of this module rather than from
``opentelemetry-instrumentation-grpc``: that one's grpc.aio interceptor expects a
streaming handler to be an async generator, and ``Run`` writes its events with
``context.write`` (it fails every Run with a TypeError).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import grpc

from agent_sessions.api.handlers import Behaviour, ServiceInterceptor
from agent_sessions.api.status import SERVICE_PREFIX, aborted_code

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

EXTRA_HINT = "pip install 'agent-sessions[otel]'"


class Tracing:
    """The tracer provider, the call interceptor and the Redis instrumentation;
    :meth:`shutdown` flushes the spans and undoes the instrumentation."""

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
        self.interceptor = TracingInterceptor(self._provider.get_tracer(__name__))

    def shutdown(self) -> None:
        self._redis.uninstrument()
        self._provider.shutdown()


class TracingInterceptor(ServiceInterceptor):
    """A server span around each SessionService call; health and reflection are left out
    (probes every second would bury the service's own calls)."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self._tracer = tracer

    def wrap(self, method: str, behaviour: Behaviour) -> Behaviour:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        tracer = self._tracer
        span_name = SERVICE_PREFIX + method
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": SERVICE_PREFIX.strip("/"),
            "rpc.method": method,
        }

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            carrier = {key: value for key, value in context.invocation_metadata() or ()}
            with tracer.start_as_current_span(
                span_name,
                context=propagate.extract(carrier),
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    response = await behaviour(request, context)
                except BaseException:
                    code = aborted_code(context)
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    span.set_status(Status(StatusCode.ERROR, code.name))
                    raise
                span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])
                return response

        return call
