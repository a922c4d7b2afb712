"""Compression: older turns folded into the summary, on request or after a long turn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from agent_sessions.agents import AgentError, AgentRegistry
from agent_sessions.agents.summarizer import (
    ExtractiveSummarizer,
    Summarizer,
    SummaryRequest,
    cut,
)
from agent_sessions.errors import FoldConflict, SessionError
from agent_sessions.model import Fold, ItemType, Session, Turn, text_bytes
from agent_sessions.sessions.events import Compressed
from agent_sessions.sessions.observers import SessionObserver
from agent_sessions.sessions.policy import SessionPolicy
from agent_sessions.sessions.tracking import InFlight
from agent_sessions.store import SessionStore

log = logging.getLogger(__name__)

_RESULT_LOOKAHEAD_ITEMS = 1000
"""How far past the folded turns a compression looks for the results of their calls."""


class Compactor:
    """Compresses sessions: one call at a time when asked (CompressSession), and in the
    background when a turn leaves a history longer than the policy allows."""

    def __init__(
        self,
        store: SessionStore,
        agents: AgentRegistry,
        policy: SessionPolicy,
        *,
        clock: Callable[[], int],
        in_flight: InFlight,
        observer: SessionObserver,
    ) -> None:
        self.store = store
        self._agents = agents
        self._policy = policy
        self._clock = clock
        self._in_flight = in_flight
        self._observer = observer
        self._extractive = ExtractiveSummarizer()
        self._compacting: dict[tuple[str, str, str], asyncio.Task[None]] = {}

    async def compress(self, app: str, user_id: str, session_id: str, keep_last: int) -> Compressed:
        """Folds all turns but the last ``keep_last`` into the summary, in one atomic step."""
        store = self.store.app(app)
        session = await store.get(user_id=user_id, session_id=session_id, now_ms=self._clock())
        first = session.folded_turns + 1
        last = session.total_turns - keep_last
        if session.running is not None:
            last = min(last, session.running.index - 1)  # the running turn stays
        if last < first:
            return Compressed(session, 0, "")
        # Turns before the running one never change, so reading them here and folding
        # them later is safe: the fold itself checks that no other fold came between.
        page = await store.list_turns(
            user_id=user_id,
            session_id=session_id,
            start_index=first,
            limit=last - first + 1,
            newest_first=False,
            include_archived=False,
            now_ms=self._clock(),
        )
        turns = page.turns
        if len(turns) != last - first + 1 or turns[0].index != first:
            raise FoldConflict(session_id)
        turns = await self._keeping_tool_pairs(store, user_id, session_id, turns)
        if not turns:
            return Compressed(session, 0, "")
        last = turns[-1].index
        summary, summarizer = await self._summarize(session, turns)
        fold = Fold(
            first_index=first,
            last_index=last,
            summary=summary,
            folded_bytes=sum(text_bytes(t) for t in turns),
            request_ids=tuple(t.request_id for t in turns if t.request_id),
            archive=self._policy.archive_folded_turns,
            create_time_ms=session.create_time_ms,
            items_through=max((t.last_item_sequence for t in turns), default=0),
        )
        session = await store.fold(
            user_id=user_id, session_id=session_id, fold=fold, now_ms=self._clock()
        )
        self._observer.compacted(session=session, folded_turns=len(turns), summarizer=summarizer)
        return Compressed(session, len(turns), summarizer)

    async def _keeping_tool_pairs(
        self, store: SessionStore, user_id: str, session_id: str, turns: list[Turn]
    ) -> list[Turn]:
        """The turns to fold, less those from the first whose tool call has its result in
        a turn that stays: a result must never outlive its call, nor a call its result.
        (A Run's calls and results share a turn; appends may split them.)"""
        with_items = [t for t in turns if t.first_item_sequence]
        if not with_items:
            return turns
        low = with_items[0].first_item_sequence - 1
        high = max(t.last_item_sequence for t in with_items)
        folded = await store.list_items(
            user_id=user_id,
            session_id=session_id,
            after=low,
            before=high + 1,
            limit=high - low,
            newest_first=False,
            now_ms=self._clock(),
        )
        answered = {i.call_id for i in folded.items if i.type is ItemType.TOOL_RESULT}
        open_calls = {
            i.call_id: i.turn_index
            for i in folded.items
            if i.type is ItemType.TOOL_CALL and i.call_id and i.call_id not in answered
        }
        if not open_calls:
            return turns
        kept = await store.list_items(
            user_id=user_id,
            session_id=session_id,
            after=high,
            before=None,
            limit=_RESULT_LOOKAHEAD_ITEMS,
            newest_first=False,
            now_ms=self._clock(),
        )
        split = [
            open_calls[i.call_id]
            for i in kept.items
            if i.type is ItemType.TOOL_RESULT and i.call_id in open_calls
        ]
        if not split:
            return turns
        return [t for t in turns if t.index < min(split)]

    async def _summarize(self, session: Session, turns: Sequence[Turn]) -> tuple[str, str]:
        """The new summary, and which summarizer wrote it."""
        max_bytes = self._policy.max_summary_bytes
        configured = self._agents.resolve(session.agent_id)
        if configured is not None and isinstance(configured.agent, Summarizer):
            request = SummaryRequest(
                session_id=session.session_id,
                user_id=session.user_id,
                agent_id=session.agent_id,
                summary=session.summary,
                turns=turns,
                max_bytes=max_bytes,
            )
            timeout_ms = configured.timeout_ms or self._policy.run_timeout_ms
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    summary = (await configured.agent.summarize(request)).strip()
                if summary:
                    return cut(summary, max_bytes), "agent"
                log.warning("agent %r wrote an empty summary", session.agent_id)
            except (AgentError, TimeoutError) as error:
                # Compression must not depend on the model being up: the history
                # would grow without bound while it is down.
                log.warning(
                    "agent %r could not summarize session %s, so the extractive summarizer did: %s",
                    session.agent_id,
                    session.session_id,
                    error or "timed out",
                )
        return self._extractive.fold(session.summary, turns, max_bytes), "extractive"

    def compact_later(self, session: Session) -> None:
        """Compresses the session in the background when its history outgrew the policy."""
        policy = self._policy
        turns = session.total_turns - session.folded_turns
        too_long = policy.max_history_turns and turns > policy.max_history_turns
        too_big = policy.max_history_bytes and session.history_bytes > policy.max_history_bytes
        key = (session.app, session.user_id, session.session_id)
        if not (too_long or too_big) or key in self._compacting:
            return
        keep = min(policy.keep_last_turns, policy.max_history_turns or policy.keep_last_turns)
        if too_big and not too_long:
            keep = min(keep, turns // 2)  # whatever the turns' size, halve the history
        # The newest turn stays, so that a retry of the run that just ended still replays.
        keep = max(keep, 1)
        self._compacting[key] = asyncio.create_task(self._compact(key, keep))

    async def _compact(self, key: tuple[str, str, str], keep_last: int) -> None:
        app, user_id, session_id = key
        try:
            with self._in_flight.track():
                compressed = await self.compress(app, user_id, session_id, keep_last)
            log.info(
                "compacted session %s: %d turns folded into the summary",
                session_id,
                compressed.folded_turns,
            )
        except SessionError as error:
            # Another replica compacting the same session, or the store is down: the
            # next run that finds the history too long tries again.
            log.info("could not compact session %s: %s", session_id, error.message)
        except Exception:
            log.exception("compacting session %s failed", session_id)
        finally:
            del self._compacting[key]

    async def settle(self, timeout_s: float) -> None:
        """Waits (at most ``timeout_s``) for the compactions under way."""
        if self._compacting:
            await asyncio.wait(list(self._compacting.values()), timeout=timeout_s)
