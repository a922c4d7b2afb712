"""A server span around each SessionService call (see :mod:`agent_sessions.observe.tracing`
for the provider and why the span comes from here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from agent_sessions.api.handlers import Behaviour, ServiceInterceptor
from agent_sessions.api.status import SERVICE_PREFIX, aborted_code

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


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
