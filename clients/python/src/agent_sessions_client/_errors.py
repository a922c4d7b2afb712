"""What a failed call raises: one exception per status code the service uses.

::

    SessionsError                 any error status; .code, .message, .reason, .metadata
    ├── InvalidArgumentError      INVALID_ARGUMENT: fix the request (.field names it)
    ├── NotFoundError             NOT_FOUND: unknown, expired, deleted or another user's
    ├── AlreadyExistsError        ALREADY_EXISTS: the session id is taken
    ├── FailedPreconditionError   FAILED_PRECONDITION: session ended, max turns reached
    ├── AbortedError              ABORTED: a concurrent change won (etag, running turn)
    ├── UnavailableError          UNAVAILABLE: server or its store unreachable; retry later
    ├── DeadlineExceededError     DEADLINE_EXCEEDED: the call or the agent ran out of time
    └── UnauthenticatedError      UNAUTHENTICATED / PERMISSION_DENIED: credentials refused
"""

from __future__ import annotations

import grpc

from agent_sessions_client._rich_status import error_info


class SessionsError(Exception):
    """A call failed with a gRPC status; ``reason`` is the server's stable error code."""

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode = grpc.StatusCode.UNKNOWN,
        reason: str = "",
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason
        self.metadata = metadata or {}


class InvalidArgumentError(SessionsError):
    @property
    def field(self) -> str:
        return self.metadata.get("field", "")


class NotFoundError(SessionsError):
    pass


class AlreadyExistsError(SessionsError):
    pass


class FailedPreconditionError(SessionsError):
    pass


class AbortedError(SessionsError):
    pass


class UnavailableError(SessionsError):
    pass


class DeadlineExceededError(SessionsError):
    pass


class UnauthenticatedError(SessionsError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[SessionsError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: UnauthenticatedError,
}


def from_rpc_error(error: grpc.RpcError) -> SessionsError:
    """The exception for a failed call (``grpc.RpcError`` and ``grpc.aio.AioRpcError``)."""
    call: grpc.Call = error  # type: ignore[assignment]  # every RpcError raised by a call is one
    code = call.code()
    reason, metadata = error_info(call.trailing_metadata())
    message = call.details() or code.name
    return _BY_CODE.get(code, SessionsError)(message, code=code, reason=reason, metadata=metadata)
