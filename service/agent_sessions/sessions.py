"""The session logic: defaults, limits and the life of a turn, independent of gRPC and storage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass

from agent_sessions import paging, validation
from agent_sessions.agents import (
    Agent,
    AgentContext,
    AgentError,
    AgentEvent,
    AgentRegistry,
    AgentTimeout,
    AgentUnavailable,
)
from agent_sessions.agents.summarizer import (
    ExtractiveSummarizer,
    Summarizer,
    SummaryRequest,
    cut,
)
from agent_sessions.errors import (
    AgentNotConfigured,
    FoldConflict,
    InvalidArgument,
    RunSuperseded,
    SessionError,
    TooManyRuns,
    quote,
)
from agent_sessions.model import (
    Fold,
    JsonValue,
    Session,
    SessionCursor,
    SessionPatch,
    SessionStatus,
    StateDelta,
    TokenUsage,
    Turn,
    TurnOutcome,
    TurnStart,
    TurnStatus,
    text_bytes,
)
from agent_sessions.store import SessionStore

log = logging.getLogger(__name__)

MAX_IMPORT_TURNS = 10_000
MAX_TURN_INDEX = 2**31 - 1
"""Turn indexes are int32 on the wire."""
MAX_FOLDED_TURNS = 1_000_000_000
"""The most folded turns an import may claim: an imported history ends far enough below
MAX_TURN_INDEX that no session can run its way past it."""
SESSIONS_PAGE_SIZE = 50
TURNS_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
CANCELLED_ERROR = "cancelled: the caller went away before the reply was complete"
INTERNAL_ERROR = "internal error: the service failed while running the turn (see its log)"
# A run that outlives its timeout is failed by the run itself; the lease only frees
# the session when the run could not record its end (its process died, or the store
# was unreachable at that moment), so it lasts a little longer than the timeout.
_MAX_LEASE_SLACK_MS = 5_000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Defaults and limits for sessions and turns."""

    default_ttl_ms: int = 24 * 3_600_000
    default_idle_timeout_ms: int = 30 * 60_000
    default_max_turns: int = 0
    max_ttl_ms: int = 30 * 24 * 3_600_000
    max_input_bytes: int = 32 * 1024
    max_state_bytes: int = 64 * 1024
    context_turns: int = 20
    run_timeout_ms: int = 5 * 60_000
    max_sessions_per_user: int = 10_000
    max_concurrent_runs: int = 1_000
    keep_last_turns: int = 20
    """Turns a compression keeps in the history when the caller does not say."""
    max_history_turns: int = 500
    """Past this many turns in the history, a run compresses it afterwards (0: never)."""
    max_history_bytes: int = 2 * 1024 * 1024
    """Past this many input and output bytes in the history, likewise (0: never)."""
    max_summary_bytes: int = 8 * 1024
    archive_folded_turns: bool = False


@dataclass(frozen=True, slots=True)
class RunStarted:
    turn_index: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class RunDelta:
    text: str


@dataclass(frozen=True, slots=True)
class RunCompleted:
    turn: Turn
    session: Session


RunEvent = RunStarted | RunDelta | RunCompleted


@dataclass(frozen=True, slots=True)
class SessionsPage:
    sessions: list[Session]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class TurnsPage:
    turns: list[Turn]
    next_page_token: str


@dataclass(frozen=True, slots=True)
class Compressed:
    """What a compression did: the session after it, how many turns it folded, and
    which summarizer wrote the summary ("agent", "extractive", or "" if none ran)."""

    session: Session
    folded_turns: int
    summarizer: str


class _InFlight:
    """Counts runs and turn writes under way, so that shutdown can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    @contextmanager
    def track(self) -> Iterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if not self._count:
                self._idle.set()

    async def idle(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()


class SessionManager:
    """Creates, reads, changes and runs sessions over a store and a set of agents."""

    def __init__(
        self,
        store: SessionStore,
        agents: AgentRegistry,
        policy: SessionPolicy | None = None,
        *,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.store = store
        self._agents = agents
        self._policy = policy or SessionPolicy()
        longest = agents.longest_timeout_ms(self._policy.run_timeout_ms)
        self._lease_ms = longest + min(longest, _MAX_LEASE_SLACK_MS)
        self._clock = clock
        self._in_flight = _InFlight()
        self._runs = _InFlight()
        self._extractive = ExtractiveSummarizer()
        self._compacting: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def create(
        self,
        *,
        user_id: str,
        agent_id: str,
        session_id: str = "",
        ttl_ms: int | None = None,
        idle_timeout_ms: int | None = None,
        max_turns: int | None = None,
        state: dict[str, JsonValue] | None = None,
        labels: dict[str, str] | None = None,
        request_id: str = "",
    ) -> Session:
        policy = self._policy
        now = self._clock()
        if request_id and not session_id:
            raise InvalidArgument(
                "request_id",
                "makes a create retry-safe only with a client-chosen session_id; "
                "set session_id too, or leave request_id empty",
            )
        session = Session(
            session_id=validation.session_id(session_id) if session_id else new_session_id(),
            user_id=validation.user_id(user_id),
            agent_id=self._known_agent(agent_id),
            status=SessionStatus.ACTIVE,
            create_time_ms=now,
            update_time_ms=now,
            last_activity_ms=now,
            ttl_ms=self._duration("ttl", ttl_ms, policy.default_ttl_ms),
            idle_timeout_ms=self._duration(
                "idle_timeout", idle_timeout_ms, policy.default_idle_timeout_ms
            ),
            max_turns=validation.max_turns(
                policy.default_max_turns if max_turns is None else max_turns
            ),
            turn_count=0,
            total_turns=0,
            state=validation.state(
                state or {}, max_bytes=policy.max_state_bytes, field="state_json"
            ),
            labels=validation.labels(labels or {}),
            create_request_id=validation.request_id(request_id),
        )
        return await self.store.create(session, max_sessions_per_user=policy.max_sessions_per_user)

    async def import_session(
        self,
        *,
        user_id: str,
        agent_id: str,
        session_id: str,
        turns: Sequence[Turn],
        ttl_ms: int | None = None,
        idle_timeout_ms: int | None = None,
        max_turns: int | None = None,
        state: dict[str, JsonValue] | None = None,
        labels: dict[str, str] | None = None,
        summary: str = "",
        status: SessionStatus = SessionStatus.ACTIVE,
        folded_turns: int = 0,
        turn_count: int = 0,
    ) -> Session:
        """Creates a session with a finished history; see ``SessionService.ImportSession``.

        The session starts a fresh life now; its counts come from ``turns``, which are
        all checked before anything is written, and from ``folded_turns``, the turns
        before them that ``summary`` stands for (of which ``turn_count`` less the
        completed ``turns`` count as completed). Invalid fields are named as in
        ``ImportSessionRequest`` (``snapshot.ttl``, ``snapshot.turns[3].index``).
        """
        policy = self._policy
        session_id = validation.session_id(session_id, field="snapshot.session_id")
        user_id = validation.user_id(user_id, field="snapshot.user_id")
        agent_id = self._known_agent(agent_id, field="snapshot.agent_id")
        ttl_ms = self._duration("snapshot.ttl", ttl_ms, policy.default_ttl_ms)
        idle_timeout_ms = self._duration(
            "snapshot.idle_timeout", idle_timeout_ms, policy.default_idle_timeout_ms
        )
        max_turns = validation.max_turns(
            policy.default_max_turns if max_turns is None else max_turns, field="snapshot.max_turns"
        )
        state = validation.state(
            state or {}, max_bytes=policy.max_state_bytes, field="snapshot.state_json"
        )
        labels = validation.labels(labels or {}, field="snapshot.labels")
        if not 0 <= folded_turns <= MAX_FOLDED_TURNS:
            raise InvalidArgument(
                "snapshot.folded_turns",
                f"is {folded_turns}; it must be between 0 and {MAX_FOLDED_TURNS}",
            )
        summary = validation.summary(summary, max_bytes=policy.max_summary_bytes)
        history = self._importable(turns, first_index=folded_turns + 1)
        completed = sum(t.status is TurnStatus.COMPLETED for t in history)
        now = self._clock()
        session = Session(
            session_id=session_id,
            user_id=user_id,
            agent_id=agent_id,
            status=status,
            create_time_ms=now,
            update_time_ms=now,
            last_activity_ms=now,
            ttl_ms=ttl_ms,
            idle_timeout_ms=idle_timeout_ms,
            max_turns=max_turns,
            turn_count=completed + min(max(turn_count - completed, 0), folded_turns),
            total_turns=folded_turns + len(history),
            state=state,
            labels=labels,
            summary=summary,
            folded_turns=folded_turns,
            history_bytes=sum(text_bytes(t) for t in history),
        )
        return await self.store.import_session(
            session, history, max_sessions_per_user=policy.max_sessions_per_user
        )

    def _importable(self, turns: Sequence[Turn], first_index: int) -> list[Turn]:
        """The turns of an import, checked: a finished history from ``first_index`` on,
        without gaps, inputs as Run takes them."""
        if len(turns) > MAX_IMPORT_TURNS:
            raise InvalidArgument(
                "snapshot.turns",
                f"has {len(turns)} turns; the limit is {MAX_IMPORT_TURNS} turns per import",
            )
        completed_by_request: dict[str, int] = {}
        for position, turn in enumerate(turns):
            field = f"snapshot.turns[{position}]"
            if turn.index != position + first_index:
                raise InvalidArgument(
                    f"{field}.index",
                    f"is {turn.index} where {position + first_index} was expected: the "
                    f"turns' indexes run from snapshot.folded_turns + 1 ({first_index}) in "
                    "order, without gaps",
                )
            validation.finished_turn_status(f"{field}.status", turn.status)
            validation.run_input(
                turn.input, max_bytes=self._policy.max_input_bytes, field=f"{field}.input"
            )
            if turn.output and turn.status is not TurnStatus.COMPLETED:
                raise InvalidArgument(
                    f"{field}.output",
                    f"must be empty for a {turn.status.name} turn: "
                    "only a completed turn keeps a reply",
                )
            validation.request_id(turn.request_id, field=f"{field}.request_id")
            if turn.request_id in completed_by_request:
                # Run replays a completed turn's request id rather than record a new turn.
                raise InvalidArgument(
                    f"{field}.request_id",
                    f"{quote(turn.request_id)} is the request id of completed turn "
                    f"{completed_by_request[turn.request_id]}; a request id may not follow "
                    "its completed turn",
                )
            if turn.request_id and turn.status is TurnStatus.COMPLETED:
                completed_by_request[turn.request_id] = turn.index
        return list(turns)

    async def get(self, *, user_id: str, session_id: str) -> Session:
        return await self.store.get(
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            now_ms=self._clock(),
        )

    async def list(
        self, *, user_id: str, agent_id: str = "", page_size: int = 0, page_token: str = ""
    ) -> SessionsPage:
        validation.user_id(user_id)
        if agent_id:
            validation.agent_id(agent_id)
        size = validation.page_size(page_size, default=SESSIONS_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        query = {"user_id": user_id, "agent_id": agent_id}
        after = None
        if page_token:
            position = paging.decode(page_token, query)
            after = SessionCursor(
                paging.integer(position, "t", minimum=0), paging.text(position, "s")
            )
        page = await self.store.list(
            user_id=user_id,
            agent_id=agent_id or None,
            page_size=size,
            after=after,
            now_ms=self._clock(),
        )
        token = ""
        if page.next_cursor is not None:
            cursor = page.next_cursor
            token = paging.encode(query, {"t": cursor.last_activity_ms, "s": cursor.session_id})
        return SessionsPage(page.sessions, token)

    async def update(
        self, *, user_id: str, session_id: str, patch: SessionPatch, etag: str = ""
    ) -> Session:
        policy = self._policy
        if patch == SessionPatch():
            raise InvalidArgument(
                "update_mask",
                "names no field to change: use state_json, labels, ttl, idle_timeout or max_turns",
            )
        if patch.state is not None:
            validation.state(
                patch.state, max_bytes=policy.max_state_bytes, field="session.state_json"
            )
        if patch.labels is not None:
            validation.labels(patch.labels)
        if patch.ttl_ms is not None:
            validation.duration_ms("ttl", patch.ttl_ms, max_ms=policy.max_ttl_ms)
        if patch.idle_timeout_ms is not None:
            validation.duration_ms("idle_timeout", patch.idle_timeout_ms, max_ms=policy.max_ttl_ms)
        if patch.max_turns is not None:
            validation.max_turns(patch.max_turns)
        return await self.store.update(
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            patch=patch,
            expected_etag=etag or None,
            now_ms=self._clock(),
        )

    async def end(self, *, user_id: str, session_id: str) -> Session:
        return await self.store.end(
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            now_ms=self._clock(),
        )

    async def delete(self, *, user_id: str, session_id: str) -> None:
        await self.store.delete(
            user_id=validation.user_id(user_id),
            session_id=validation.session_id(session_id),
            now_ms=self._clock(),
        )

    async def list_turns(
        self,
        *,
        user_id: str,
        session_id: str,
        page_size: int = 0,
        page_token: str = "",
        newest_first: bool = False,
        include_archived: bool = False,
    ) -> TurnsPage:
        validation.user_id(user_id)
        validation.session_id(session_id)
        size = validation.page_size(page_size, default=TURNS_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        query = {
            "session_id": session_id,
            "newest_first": newest_first,
            "include_archived": include_archived,
        }
        # The token keeps the index where the next page starts rather than an offset,
        # so turns added or folded while a caller pages do not shift the pages.
        start = (
            paging.integer(paging.decode(page_token, query), "i", minimum=1) if page_token else None
        )
        page = await self.store.list_turns(
            user_id=user_id,
            session_id=session_id,
            start_index=start,
            limit=size,
            newest_first=newest_first,
            include_archived=include_archived,
            now_ms=self._clock(),
        )
        token = "" if page.next_index is None else paging.encode(query, {"i": page.next_index})
        return TurnsPage(page.turns, token)

    async def compress(
        self, *, user_id: str, session_id: str, keep_last: int | None = None
    ) -> Compressed:
        """Folds all turns but the last ``keep_last`` (the server's default when None) into
        the summary; see ``SessionService.CompressSession``."""
        validation.user_id(user_id)
        validation.session_id(session_id)
        if keep_last is None:
            keep_last = self._policy.keep_last_turns
        elif keep_last < 0:
            raise InvalidArgument(
                "keep_last", f"is {keep_last}; give 0 or more turns to keep, or leave it unset"
            )
        with self._in_flight.track():
            return await self._compress(user_id, session_id, keep_last)

    async def _compress(self, user_id: str, session_id: str, keep_last: int) -> Compressed:
        session = await self.store.get(user_id=user_id, session_id=session_id, now_ms=self._clock())
        first = session.folded_turns + 1
        last = session.total_turns - keep_last
        if session.running is not None:
            last = min(last, session.running.index - 1)  # the running turn stays
        if last < first:
            return Compressed(session, 0, "")
        # Turns before the running one never change, so reading them here and folding
        # them later is safe: the fold itself checks that no other fold came between.
        page = await self.store.list_turns(
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
        summary, summarizer = await self._summarize(session, turns)
        fold = Fold(
            first_index=first,
            last_index=last,
            summary=summary,
            folded_bytes=sum(text_bytes(t) for t in turns),
            request_ids=tuple(t.request_id for t in turns if t.request_id),
            archive=self._policy.archive_folded_turns,
            create_time_ms=session.create_time_ms,
        )
        session = await self.store.fold(
            user_id=user_id, session_id=session_id, fold=fold, now_ms=self._clock()
        )
        return Compressed(session, len(turns), summarizer)

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

    def _compact_later(self, session: Session) -> None:
        """Compresses the session in the background when its history outgrew the policy."""
        policy = self._policy
        turns = session.total_turns - session.folded_turns
        too_long = policy.max_history_turns and turns > policy.max_history_turns
        too_big = policy.max_history_bytes and session.history_bytes > policy.max_history_bytes
        key = (session.user_id, session.session_id)
        if not (too_long or too_big) or key in self._compacting:
            return
        keep = min(policy.keep_last_turns, policy.max_history_turns or policy.keep_last_turns)
        if too_big and not too_long:
            keep = min(keep, turns // 2)  # whatever the turns' size, halve the history
        # The newest turn stays, so that a retry of the run that just ended still replays.
        keep = max(keep, 1)
        self._compacting[key] = asyncio.create_task(self._compact(key, keep))

    async def _compact(self, key: tuple[str, str], keep_last: int) -> None:
        user_id, session_id = key
        try:
            with self._in_flight.track():
                compressed = await self._compress(user_id, session_id, keep_last)
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

    async def run(
        self, *, user_id: str, session_id: str, text: str, request_id: str = ""
    ) -> AsyncGenerator[RunEvent, None]:
        """Runs one turn, yielding its events; see ``agentsessions.sessions.v1.SessionService.Run``.

        Close the iterator (``contextlib.aclosing``) when abandoning it early: the
        turn is then recorded CANCELLED.
        """
        policy = self._policy
        validation.user_id(user_id)
        validation.session_id(session_id)
        validation.run_input(text, max_bytes=policy.max_input_bytes)
        validation.request_id(request_id)
        if self._runs.count >= policy.max_concurrent_runs:
            raise TooManyRuns(policy.max_concurrent_runs)
        # aclosing: closing this generator must reach the turn at once, to record it.
        with self._runs.track():
            async with aclosing(self._turn(user_id, session_id, text, request_id)) as events:
                async for event in events:
                    yield event

    async def _turn(
        self, user_id: str, session_id: str, text: str, request_id: str
    ) -> AsyncGenerator[RunEvent, None]:
        policy = self._policy
        run_id = secrets.token_hex(8)
        start = await self.store.begin_turn(
            user_id=user_id,
            session_id=session_id,
            text=text,
            request_id=request_id,
            run_id=run_id,
            lease_ms=self._lease_ms,
            history_turns=policy.context_turns,
            now_ms=self._clock(),
        )
        if start.replayed:
            yield RunStarted(start.turn.index, replayed=True)
            if start.turn.output:
                yield RunDelta(start.turn.output)
            yield RunCompleted(start.turn, start.session)
            return
        configured = self._agents.resolve(start.session.agent_id)
        if configured is None:
            error = AgentNotConfigured(start.session.agent_id, self._agents.agent_ids)
            await self._record_unfinished(start, run_id, TurnStatus.FAILED, error.message)
            raise error
        timeout_ms = configured.timeout_ms or policy.run_timeout_ms
        with self._in_flight.track():
            reply: list[str] = []
            reply_bytes = 0
            state_delta = StateDelta()
            usage = TokenUsage()
            try:
                yield RunStarted(start.turn.index, replayed=False)
                async with asyncio.timeout(timeout_ms / 1000):
                    agent_stream = _agent_events(configured.agent, _agent_context(start), text)
                    async with aclosing(agent_stream) as stream:
                        async for item in stream:
                            if isinstance(item, str):
                                reply_bytes += len(item.encode())
                                if reply_bytes > configured.max_reply_bytes:
                                    raise AgentError(
                                        "the reply grew past the agent's limit of "
                                        f"{configured.max_reply_bytes} bytes"
                                    )
                                if item:
                                    reply.append(item)
                                    yield RunDelta(item)
                            elif isinstance(item, StateDelta):
                                state_delta = state_delta.merged(item)
                            elif isinstance(item, TokenUsage):
                                usage = usage + item
                            else:
                                raise AgentError(
                                    f"it sent a {type(item).__name__}, not text, a StateDelta "
                                    "or a TokenUsage"
                                )
                if state_delta:
                    self._check_agent_state(start.session, state_delta)
            except (asyncio.CancelledError, GeneratorExit):
                await self._record_unfinished(start, run_id, TurnStatus.CANCELLED, CANCELLED_ERROR)
                raise
            except (AgentError, TimeoutError) as exc:
                failure = _agent_failure(exc, start, timeout_ms)
                log.warning(
                    "turn %d of %s failed: %s",
                    start.turn.index,
                    session_id,
                    failure.message,
                    exc_info=exc.__cause__ is not None and not isinstance(exc, TimeoutError),
                )
                await self._record_unfinished(start, run_id, TurnStatus.FAILED, failure.message)
                raise failure from exc
            except Exception:
                # Not the agent's failure but the service's own: INTERNAL (the servicer
                # logs the trace).
                log.warning("turn %d of %s failed in the service", start.turn.index, session_id)
                await self._record_unfinished(start, run_id, TurnStatus.FAILED, INTERNAL_ERROR)
                raise

            turn, session = await self.store.finish_turn(
                user_id=user_id,
                session_id=session_id,
                turn=start.turn,
                run_id=run_id,
                outcome=TurnOutcome(
                    TurnStatus.COMPLETED,
                    output="".join(reply),
                    state_delta=state_delta,
                    usage=usage,
                ),
                now_ms=self._clock(),
            )
        yield RunCompleted(turn, session)
        # Reached once the caller took the completed event: off the response path.
        self._compact_later(session)

    def _check_agent_state(self, session: Session, delta: StateDelta) -> None:
        # The agent's change must leave a state the session could have been given.
        state = {k: v for k, v in session.state.items() if k not in delta.delete}
        state.update(delta.set)
        try:
            validation.state(state, max_bytes=self._policy.max_state_bytes)
        except InvalidArgument as error:
            raise AgentError(f"its state change was refused: {error.message}") from None

    async def _record_unfinished(
        self, start: TurnStart, run_id: str, status: TurnStatus, error: str
    ) -> None:
        # A task of its own, shielded: the caller's cancellation must not stop the
        # write that keeps the user's input with an honest status, and shutdown
        # waits for it (settle) before closing the store.
        await asyncio.shield(self._write_unfinished(start, run_id, status, error))

    async def _write_unfinished(
        self, start: TurnStart, run_id: str, status: TurnStatus, error: str
    ) -> None:
        session = start.session
        try:
            with self._in_flight.track():
                await self.store.finish_turn(
                    user_id=session.user_id,
                    session_id=session.session_id,
                    turn=start.turn,
                    run_id=run_id,
                    outcome=TurnOutcome(status, error=error),
                    now_ms=self._clock(),
                )
        except RunSuperseded:
            log.info(
                "turn %d of %s was taken over before it was recorded %s",
                start.turn.index,
                session.session_id,
                status.name,
            )
        except SessionError:
            # Its lease will let a later run mark it FAILED; the input stays stored.
            log.warning(
                "could not record turn %d of %s as %s",
                start.turn.index,
                session.session_id,
                status.name,
                exc_info=True,
            )

    async def settle(self, timeout_s: float) -> None:
        """Waits (at most ``timeout_s``) for runs, the writes that record their end and
        compactions under way."""
        if self._compacting:
            await asyncio.wait(list(self._compacting.values()), timeout=timeout_s)
        await self._in_flight.idle(timeout_s)

    def _known_agent(self, agent_id: str, field: str = "agent_id") -> str:
        validation.agent_id(agent_id, field=field)
        if not self._agents.knows(agent_id):
            raise InvalidArgument(
                field,
                f"unknown agent {quote(agent_id)}: "
                f"this server has {', '.join(self._agents.agent_ids)}"
                " (configure more in the agents table, or set a default agent)",
            )
        return agent_id

    def _duration(self, field: str, value: int | None, default: int) -> int:
        if value is None:
            return default
        return validation.duration_ms(field, value, max_ms=self._policy.max_ttl_ms)


def _agent_context(start: TurnStart) -> AgentContext:
    session = start.session
    return AgentContext(
        session_id=session.session_id,
        user_id=session.user_id,
        agent_id=session.agent_id,
        turn_index=start.turn.index,
        state=session.state,
        summary=session.summary,
        history=start.history,
    )


async def _agent_events(
    agent: Agent, context: AgentContext, text: str
) -> AsyncGenerator[AgentEvent, None]:
    """The agent's events. Whatever the agent raises comes out as an :class:`AgentError`,
    so that the agent is blamed for its own failures, and only for those."""
    try:
        stream = agent.stream(context, text)
    except AgentError:
        raise
    except Exception as exc:
        raise AgentError(f"{type(exc).__name__}: {exc}") from exc
    async with aclosing(stream):
        while True:
            try:
                event = await anext(stream)
            except StopAsyncIteration:
                return
            except AgentError:
                raise
            except TimeoutError as exc:
                raise AgentTimeout(str(exc) or "the agent timed out") from exc
            except Exception as exc:
                raise AgentError(f"{type(exc).__name__}: {exc}") from exc
            yield event


def _agent_failure(
    error: AgentError | TimeoutError, start: TurnStart, timeout_ms: int
) -> AgentError:
    """The error a failed agent gives the caller; its message is also the turn's error."""
    agent = f"agent {quote(start.session.agent_id)}"
    where = f"turn {start.turn.index}"
    kept = "the turn is kept as FAILED with your input, and the session can run again"
    metadata = {"session_id": start.session.session_id, "turn_index": str(start.turn.index)}
    if isinstance(error, TimeoutError):
        return AgentTimeout(
            f"{where}: {agent} did not finish within {timeout_ms} ms; {kept}", metadata=metadata
        )
    if isinstance(error, AgentTimeout):
        return AgentTimeout(f"{where}: {agent} timed out: {error}; {kept}", metadata=metadata)
    if isinstance(error, AgentUnavailable):
        return AgentUnavailable(
            f"{where}: {agent} is unavailable: {error}; {kept}", metadata=metadata
        )
    return AgentError(f"{where}: {agent} failed: {error}; {kept}", metadata=metadata)


def new_session_id() -> str:
    """An unguessable id: 128 random bits, in hex (no leading '-' to confuse command lines)."""
    return secrets.token_hex(16)
