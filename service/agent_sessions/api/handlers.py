"""Wrapping a gRPC method handler's behaviour: what the server's interceptors share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from agent_sessions.api.status import SERVICE_PREFIX

if TYPE_CHECKING:  # generic in the type stubs only
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    ServerInterceptor = grpc.aio.ServerInterceptor

Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
"""A method's implementation: the service's are all coroutine functions (Run writes its
events with ``context.write`` rather than yielding them)."""

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def wrapped(
    handler: grpc.RpcMethodHandler[Any, Any], wrap: Callable[[Behaviour], Behaviour]
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its behaviour, whichever kind it is, replaced by ``wrap(behaviour)``."""
    kind = next(name for name in _KINDS if getattr(handler, name) is not None)
    replaced: grpc.RpcMethodHandler[Any, Any] = handler._replace(  # type: ignore[attr-defined]
        **{kind: wrap(getattr(handler, kind))}
    )
    return replaced


class ServiceInterceptor(ServerInterceptor):
    """Wraps the behaviour of each SessionService method with :meth:`wrap`, once per
    method; health checks and reflection pass through untouched."""

    def __init__(self) -> None:
        # method -> (the handler wrapped, its wrapper): the next interceptors return the
        # same handler for a method unless they answer the call themselves.
        self._wrapped: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    def wrap(self, method: str, behaviour: Behaviour) -> Behaviour:
        """The behaviour that serves ``method`` (its short name, such as ``Run``)."""
        raise NotImplementedError

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
            return cached[1]
        name = method[len(SERVICE_PREFIX) :]
        replaced = wrapped(handler, lambda behaviour: self.wrap(name, behaviour))
        if cached is None:
            self._wrapped[method] = (handler, replaced)
        return replaced
