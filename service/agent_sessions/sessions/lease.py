"""The lease of a running turn, and the heartbeat that keeps it while the agent works.

A session runs one turn at a time; the run that owns the turn holds a short lease on
it and renews the lease every third of its length. When the run's process dies, the
lease runs out within one lease, and the next run on the session marks the abandoned
turn FAILED and goes on: a crashed server blocks its sessions for seconds, whatever
the run timeout. A run that loses its lease (it stalled longer than a lease, and
another run took the session over) is fenced: the store refuses its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType

from agent_sessions.errors import RunSuperseded, StoreUnavailable
from agent_sessions.model import TurnStart
from agent_sessions.store import SessionStore

log = logging.getLogger(__name__)


class Heartbeat:
    """Renews the lease of one running turn until the ``async with`` block ends."""

    def __init__(
        self,
        store: SessionStore,
        start: TurnStart,
        run_id: str,
        *,
        lease_ms: int,
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._start = start
        self._run_id = run_id
        self._lease_ms = lease_ms
        self._clock = clock
        self._lost: RunSuperseded | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def check(self) -> None:
        """Raises ``RunSuperseded`` once another run has taken the turn over."""
        if self._lost is not None:
            raise self._lost

    async def __aenter__(self) -> Heartbeat:
        # A timer, not a task: most runs end before their first beat is due.
        self._timer = asyncio.get_running_loop().call_later(self._lease_ms / 3000, self._due)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _due(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        session = self._start.session
        index = self._start.turn.index
        while True:
            try:
                await self._store.renew_lease(
                    user_id=session.user_id,
                    session_id=session.session_id,
                    index=index,
                    run_id=self._run_id,
                    lease_ms=self._lease_ms,
                    now_ms=self._clock(),
                )
            except RunSuperseded as lost:
                log.warning(
                    "turn %d of %s was taken over by another run; this run stops",
                    index,
                    session.session_id,
                )
                self._lost = lost
                return
            except StoreUnavailable as error:
                # The next beat tries again; the lease has two more beats of room.
                log.info("could not renew the lease of turn %d: %s", index, error.message)
            except Exception:
                log.exception("renewing the lease of turn %d failed", index)
            await asyncio.sleep(self._lease_ms / 3000)
