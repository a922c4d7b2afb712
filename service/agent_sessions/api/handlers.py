"""Wrapping a gRPC method handler's behaviour: what the server's interceptors share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

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
