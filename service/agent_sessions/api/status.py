"""Domain errors to gRPC status codes, in one place, with a google.rpc.ErrorInfo detail."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from agent_sessions import errors

DOMAIN = "agentsessions.sessions.v1.SessionService"
SERVICE_PREFIX = f"/{DOMAIN}/"
"""How the full names of the service's methods begin, as interceptors see them."""

_CODES: tuple[tuple[type[errors.SessionError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.SessionNotFound, grpc.StatusCode.NOT_FOUND),
    (errors.SessionAlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Conflict, grpc.StatusCode.ABORTED),
    (errors.StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    # The agent's kinds before their base: the first match wins.
    (errors.AgentUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.AgentTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.AgentError, grpc.StatusCode.INTERNAL),
)


def status_code(error: errors.SessionError) -> grpc.StatusCode:
    for error_type, code in _CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


# Errors quote callers' values cut short (errors.quote); these bounds are the backstop
# that keeps any status readable within a client's default 16 KiB metadata limit.
_MAX_MESSAGE_CHARS = 1024
_MAX_METADATA_VALUE_CHARS = 256


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_status(error: errors.SessionError) -> grpc.Status:
    """The status to abort with: code, message, and ErrorInfo(reason, domain, metadata)."""
    code = status_code(error)
    metadata = {
        key: _bounded(value, _MAX_METADATA_VALUE_CHARS) for key, value in error.metadata.items()
    }
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(
            code=code.value[0],
            message=_bounded(error.message, _MAX_MESSAGE_CHARS),
            details=[detail],
        )
    )
    return status


def aborted_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """The status a call that raised ends with: what ``abort`` set, else UNKNOWN."""
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code
    return grpc.StatusCode.UNKNOWN
