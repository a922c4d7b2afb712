"""Registers the servicer so that a request that does not decode is INVALID_ARGUMENT.

With the generated registration, grpc.aio answers bytes that are not the request
message (a corrupt frame, invalid UTF-8, nesting past protobuf's limit) with UNKNOWN
before the servicer sees them; here such a request reaches the servicer as a
:class:`MalformedRequest`, which it refuses with a message saying what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from agentsessions.sessions.v1 import sessions_pb2
from google.protobuf.message import DecodeError, Message


@dataclass(frozen=True, slots=True)
class MalformedRequest:
    """The bytes of a request that do not decode as its message type."""

    message_type: str
    error: str


def _lenient(message_class: type[Message]) -> Callable[[bytes], Message | MalformedRequest]:
    def deserialize(data: bytes) -> Message | MalformedRequest:
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return MalformedRequest(message_class.DESCRIPTOR.full_name, str(error))

    return deserialize


def add_session_service(servicer: Any, server: grpc.aio.Server) -> None:
    """Serves ``SessionService`` from ``servicer``, every method of the contract."""
    service = sessions_pb2.DESCRIPTOR.services_by_name["SessionService"]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request: type[Message] = getattr(sessions_pb2, method.input_type.name)
        response: type[Message] = getattr(sessions_pb2, method.output_type.name)
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_lenient(request),
            response_serializer=response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)  # type: ignore[attr-defined]
