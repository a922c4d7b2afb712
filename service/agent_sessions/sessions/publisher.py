"""How a running turn's deltas and items reach its session's event log while it runs.

A run buffers them and publishes what it holds ``delay_s`` after the first of them, one
round trip at a time (the next batch waits for the one in flight); what is still held
when the turn finishes goes in with its commit. So a run that ends within the delay
(most replies of a fast agent) costs no round trip more than before, and a long one
costs one every ``delay_s`` at most. While someone watches the session (begin_turn and
each publication say so) a run publishes at once instead, one publication in flight at a
time, what comes meanwhile going in the next: watchers see the text as it comes. A
detached run publishes its first delta at once (its caller reads its reply from the
log, and the first token is the one a user waits for), then as any run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent_sessions.errors import RunSuperseded, StoreUnavailable
from agent_sessions.model import Item
from agent_sessions.session_events import EventKind, SessionEvent
from agent_sessions.store import SessionStore

log = logging.getLogger(__name__)


class RunPublisher:
    """Publishes one run's deltas and items to its session's log."""

    def __init__(
        self,
        store: SessionStore,
        *,
        user_id: str,
        session_id: str,
        run_id: str,
        turn_index: int,
        delay_s: float,
        first_delay_s: float,
        watched: bool,
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._user_id = user_id
        self._session_id = session_id
        self._run_id = run_id
        self._turn_index = turn_index
        self._unwatched_delay_s = delay_s
        self._delay_s = 0.0 if watched else delay_s
        self._next_delay_s = 0.0 if watched else first_delay_s
        self._clock = clock
        self._held: list[SessionEvent] = []
        self._texts: list[str] = []
        """Deltas not yet in ``_held``: joined into one DELTA event when taken."""
        self._timer: asyncio.Handle | None = None
        self._flight: asyncio.Task[None] | None = None
        self._closed = False

    def add_delta(self, text: str) -> None:
        """Holds a delta for the next publication; consecutive deltas go out as one."""
        self._texts.append(text)
        if self._timer is None:
            self._arm()

    def add_item(self, item: Item) -> None:
        """Holds an agent's item for the next publication, after the deltas before it."""
        self._take_texts()
        self._held.append(SessionEvent(EventKind.ITEM, item=item))
        if self._timer is None:
            self._arm()

    async def rest(self) -> list[SessionEvent]:
        """Stops publishing, waits for the publication in flight, and returns what is
        still held (for the turn's commit to log)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flight is not None:
            # Shielded: a caller that goes away must not cut a publication in half.
            await asyncio.shield(self._flight)
        return self._take()

    def _take(self) -> list[SessionEvent]:
        self._take_texts()
        held, self._held = self._held, []
        return held

    def _take_texts(self) -> None:
        if self._texts:
            self._held.append(SessionEvent(EventKind.DELTA, text="".join(self._texts)))
            self._texts = []

    def _arm(self) -> None:
        if self._closed or self._timer is not None or self._flight is not None:
            return
        loop = asyncio.get_running_loop()
        delay, self._next_delay_s = self._next_delay_s, self._delay_s
        if delay > 0:
            self._timer = loop.call_later(delay, self._start)
        else:
            self._timer = loop.call_soon(self._start)

    def _start(self) -> None:
        self._timer = None
        if self._closed:
            return
        batch = self._take()
        if not batch:
            return
        self._flight = asyncio.get_running_loop().create_task(self._publish(batch))

    async def _publish(self, batch: list[SessionEvent]) -> None:
        try:
            watched = await self._store.publish(
                user_id=self._user_id,
                session_id=self._session_id,
                run_id=self._run_id,
                turn_index=self._turn_index,
                events=batch,
                now_ms=self._clock(),
            )
            self._delay_s = self._next_delay_s = 0.0 if watched else self._unwatched_delay_s
        except StoreUnavailable as error:
            # Kept for the next publication or the commit: no delta is lost to watchers.
            self._held[:0] = batch  # before what was added meanwhile
            log.info("could not publish to the log of %s yet: %s", self._session_id, error)
        except RunSuperseded:
            self._closed = True  # the turn is another run's: its heartbeat will find out
        finally:
            self._flight = None
        self._arm()
