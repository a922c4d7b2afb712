"""The SessionService stub the benchmark drives, typed for grpc.aio."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the typed stubs know that a grpc.aio stub returns awaitables
    from agentsessions.sessions.v1.sessions_pb2_grpc import SessionServiceAsyncStub as Stub
else:
    from agentsessions.sessions.v1.sessions_pb2_grpc import SessionServiceStub as Stub

__all__ = ["Stub"]
