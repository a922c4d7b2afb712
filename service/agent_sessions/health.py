"""Standard health checking (grpc.health.v1) that follows whether the store answers."""

from __future__ import annotations

import asyncio
import logging
import os

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from agent_sessions.errors import StoreUnavailable
from agent_sessions.store import SessionStore

log = logging.getLogger(__name__)

SERVICE_NAME = "agentsessions.sessions.v1.SessionService"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class StoreHealth:
    """Pings the store on an interval and reports SERVING only while it answers.

    A ping has ``timeout_s`` to answer, as long as any store call (``--redis-timeout``):
    a store slow to answer still serves calls, so it is not reported down (a cluster
    client's first ping also learns the slots).
    """

    def __init__(self, store: SessionStore, *, interval_s: float, timeout_s: float) -> None:
        self.servicer = health_aio.HealthServicer()
        self._store = store
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._healthy: bool | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        await self.check()
        self._task = asyncio.create_task(self._watch(), name="store-health")

    async def check(self) -> bool:
        why = ""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._store.ping()
        except StoreUnavailable as error:
            why = _reason(error)
        except TimeoutError:
            why = f"no answer within {self._timeout_s:g}s"
        healthy = not why
        if healthy != self._healthy:
            self._healthy = healthy
            if healthy:
                log.info("store answers: SERVING")
            else:
                log.warning("store does not answer (NOT_SERVING): %s", why)
            await self._set(_SERVING if healthy else _NOT_SERVING)
        return healthy

    async def shutdown(self) -> None:
        """Reports NOT_SERVING for good, so that balancers stop sending calls."""
        await self.servicer.enter_graceful_shutdown()
        # Stopped by an event, not by cancelling: a cancellation that arrives as the
        # ping's own timeout expires can be lost (asyncio.timeout in Python 3.11).
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(self._interval_s):
                    await self._stopping.wait()
            except TimeoutError:
                await self.check()

    async def _set(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for service in ("", SERVICE_NAME):
            await self.servicer.set(service, status)


def _reason(error: BaseException) -> str:
    """What the operator needs to know about ``error``: its text, with the system's words
    for the socket error under it ("Connection refused"), which asyncio's "Connect call
    failed" hides."""
    text = str(error).rstrip(".")
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            words = os.strerror(cause.errno)
            return text if words in text else f"{text} ({words})"
        cause = cause.__cause__ or cause.__context__
    return text
