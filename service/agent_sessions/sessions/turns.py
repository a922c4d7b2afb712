"""The life of a turn: begun in the store, answered by the agent, committed or failed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from agent_sessions import scopes, validation
from agent_sessions.agents import (
    Agent,
    AgentContext,
    AgentError,
    AgentEvent,
    AgentRegistry,
    AgentTimeout,
    AgentUnavailable,
)
from agent_sessions.errors import (
    AgentNotConfigured,
    InvalidArgument,
    RunSuperseded,
    SessionError,
    StoreUnavailable,
    TooManyRuns,
    TurnInProgress,
    quote,
)
from agent_sessions.model import (
    Item,
    ItemType,
    Session,
    StateDelta,
    TokenUsage,
    Turn,
    TurnOutcome,
    TurnStart,
    TurnStatus,
)
from agent_sessions.session_events import SessionEvent
from agent_sessions.sessions.compaction import Compactor
from agent_sessions.sessions.events import RunCompleted, RunDelta, RunEvent, RunItem, RunStarted
from agent_sessions.sessions.following import follow_run
from agent_sessions.sessions.lease import Heartbeat
from agent_sessions.sessions.observers import AgentOutcome, SessionObserver
from agent_sessions.sessions.policy import SessionPolicy
from agent_sessions.sessions.publisher import RunPublisher
from agent_sessions.sessions.tracking import InFlight
from agent_sessions.store import SessionStore

log = logging.getLogger(__name__)

CANCELLED_ERROR = "cancelled: the caller went away before the reply was complete"
INTERNAL_ERROR = "internal error: the service failed while running the turn (see its log)"
COMMIT_RETRY_S = 0.25
"""How often a finished turn's commit is tried again while the store is unavailable."""
CONTEXT_ITEMS_PER_TURN = 16
"""The agent's context holds the items of its history turns, up to this many a turn."""


class TurnRunner:
    """Runs turns: records each in the store, streams the agent's reply and commits it,
    or records the turn FAILED or CANCELLED with the user's input."""

    def __init__(
        self,
        store: SessionStore,
        agents: AgentRegistry,
        policy: SessionPolicy,
        *,
        clock: Callable[[], int],
        in_flight: InFlight,
        compactor: Compactor,
        observer: SessionObserver,
    ) -> None:
        self.store = store
        self._agents = agents
        self._policy = policy
        self._clock = clock
        self._in_flight = in_flight
        self._compactor = compactor
        self._observer = observer
        self._runs = InFlight()
        self._detached: set[asyncio.Task[None]] = set()

    async def run(
        self,
        app: str,
        user_id: str,
        session_id: str,
        text: str,
        request_id: str,
        *,
        detach: bool = False,
    ) -> AsyncGenerator[RunEvent, None]:
        """Runs one turn of a checked request, yielding its events. A detached run goes on
        when the caller goes away: the caller reads its events from the session's log."""
        policy = self._policy
        if self._runs.count >= policy.max_concurrent_runs:
            raise TooManyRuns(policy.max_concurrent_runs)
        with contextlib.ExitStack() as counted:
            counted.enter_context(self._runs.track())
            turn, answers = await self._begin(
                self.store.app(app), user_id, session_id, text, request_id, detach
            )
            if not answers:
                # A follower (of a detached run, which counts in its own task, or of the
                # running turn of its request id) or a replay: not a run of its own.
                counted.close()
            # aclosing: closing this generator must reach the turn at once, to record it.
            async with aclosing(turn) as events:
                async for event in events:
                    yield event

    def follow(
        self,
        app: str,
        user_id: str,
        session_id: str,
        *,
        run_id: str,
        request_id: str,
        after: int,
    ) -> AsyncGenerator[RunEvent, None]:
        """A run's events after sequence number ``after``, then its completion."""
        return follow_run(
            self.store.app(app),
            user_id=user_id,
            session_id=session_id,
            run_id=run_id,
            request_id=request_id,
            after=after,
            clock=self._clock,
        )

    async def stop_detached(self, timeout_s: float) -> None:
        """Waits (at most ``timeout_s``) for detached runs, then cancels those still
        running: each records its turn CANCELLED with the user's input."""
        if not self._detached:
            return
        _, running = await asyncio.wait(set(self._detached), timeout=timeout_s)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=timeout_s)

    async def _begin(
        self,
        store: SessionStore,
        user_id: str,
        session_id: str,
        text: str,
        request_id: str,
        detach: bool,
    ) -> tuple[AsyncGenerator[RunEvent, None], bool]:
        """Records the turn, and returns the events its caller reads: the answer's, a
        detached answer's from the log, those of the running turn of its request id, or
        the replay of the completed one; and whether reading them answers the turn."""
        policy = self._policy
        run_id = secrets.token_hex(8)
        try:
            start = await store.begin_turn(
                user_id=user_id,
                session_id=session_id,
                text=text,
                request_id=request_id,
                run_id=run_id,
                lease_ms=policy.turn_lease_ms,
                history_turns=policy.context_turns,
                now_ms=self._clock(),
                history_items=(
                    policy.context_turns * CONTEXT_ITEMS_PER_TURN if self._agents.reads_items else 0
                ),
            )
        except TurnInProgress as running:
            if not running.run_id:
                raise
            # A retry of the running turn's request: it follows that run, which calls the
            # agent once for both.
            attached = follow_run(
                store,
                user_id=user_id,
                session_id=session_id,
                run_id=running.run_id,
                turn_index=running.index,
                after=0,
                clock=self._clock,
                running=True,
            )
            return attached, False
        if start.replayed:
            return _replayed(start), False
        if detach:
            return self._run_detached(store, start, run_id, text), False
        return self._answer(store, start, run_id, text, detached=False), True

    def _run_detached(
        self, store: SessionStore, start: TurnStart, run_id: str, text: str
    ) -> AsyncGenerator[RunEvent, None]:
        """Answers the turn in a task of its own; its caller follows it in the log."""
        self._detach(self._answer(store, start, run_id, text, detached=True))
        return self._follow_detached(store, start, run_id)

    async def _follow_detached(
        self, store: SessionStore, start: TurnStart, run_id: str
    ) -> AsyncGenerator[RunEvent, None]:
        yield RunStarted(
            start.turn.index, replayed=False, run_id=run_id, sequence=start.event_sequence
        )
        followed = follow_run(
            store,
            user_id=start.session.user_id,
            session_id=start.session.session_id,
            run_id=run_id,
            turn_index=start.turn.index,
            after=start.event_sequence,
            clock=self._clock,
            running=True,
            starts_at=start.event_sequence,
        )
        async with aclosing(followed) as events:
            async for event in events:
                yield event

    def _detach(self, answer: AsyncGenerator[RunEvent, None]) -> None:
        """Answers the turn in a task of its own, which the caller's going away does not
        cancel; its outcome is in the log (a failure also in the service's log)."""

        async def drain() -> None:
            with self._runs.track():
                try:
                    async with aclosing(answer) as events:
                        async for _ in events:
                            pass
                except SessionError as error:
                    log.info("a detached run ended with %s: %s", error.reason, error.message)
                except Exception:
                    log.exception("a detached run failed in the service")

        task = asyncio.get_running_loop().create_task(drain())
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def _answer(
        self,
        store: SessionStore,
        start: TurnStart,
        run_id: str,
        text: str,
        *,
        detached: bool,
    ) -> AsyncGenerator[RunEvent, None]:
        """The agent's part of a begun turn: its events, then the commit."""
        policy = self._policy
        session = start.session
        user_id, session_id = session.user_id, session.session_id
        configured = self._agents.resolve(start.session.agent_id)
        if configured is None:
            error = AgentNotConfigured(start.session.agent_id, self._agents.agent_ids)
            await self._record_unfinished(start, run_id, TurnStatus.FAILED, error.message, None)
            raise error
        timeout_ms = configured.timeout_ms or policy.run_timeout_ms
        agent = self._agents.answering_id(start.session.agent_id)
        observer = self._observer
        with self._in_flight.track():
            reply: list[str] = []
            done: list[Item] = []
            reply_bytes = 0
            state_delta = StateDelta()
            usage = TokenUsage()
            heartbeat = Heartbeat(
                store, start, run_id, lease_ms=policy.turn_lease_ms, clock=self._clock
            )
            publisher = RunPublisher(
                store,
                user_id=user_id,
                session_id=session_id,
                run_id=run_id,
                turn_index=start.turn.index,
                delay_s=policy.publish_delay_ms / 1000,
                first_delay_s=0 if detached else policy.publish_delay_ms / 1000,
                watched=start.watched,
                clock=self._clock,
            )
            observer.turn_started(agent=agent, session_id=session_id, turn_index=start.turn.index)
            called = time.perf_counter()
            try:
                async with heartbeat:
                    yield RunStarted(start.turn.index, replayed=False, run_id=run_id)
                    async with asyncio.timeout(timeout_ms / 1000):
                        agent_stream = _agent_events(configured.agent, _agent_context(start), text)
                        async with aclosing(agent_stream) as stream:
                            async for item in stream:
                                heartbeat.check()
                                if isinstance(item, str):
                                    # An ASCII string's length is its UTF-8 size.
                                    reply_bytes += (
                                        len(item) if item.isascii() else len(item.encode())
                                    )
                                    if reply_bytes > configured.max_reply_bytes:
                                        raise AgentError(
                                            "the reply grew past the agent's limit of "
                                            f"{configured.max_reply_bytes} bytes"
                                        )
                                    if item:
                                        reply.append(item)
                                        publisher.add_delta(item)
                                        yield RunDelta(item)
                                elif isinstance(item, StateDelta):
                                    state_delta = state_delta.merged(item)
                                elif isinstance(item, TokenUsage):
                                    usage = usage + item
                                elif isinstance(item, Item):
                                    done.append(self._agent_item(item, len(done)))
                                    publisher.add_item(item)
                                    yield RunItem(item)
                                else:
                                    raise AgentError(
                                        f"it sent a {type(item).__name__}, not text, a "
                                        "StateDelta or a TokenUsage"
                                    )
                    state_delta = scopes.stored_delta(state_delta)
                    if state_delta:
                        self._check_agent_state(start.session, state_delta)
            except (asyncio.CancelledError, GeneratorExit):
                self._agent_finished(agent, "cancelled", called)
                await self._record_unfinished(
                    start, run_id, TurnStatus.CANCELLED, CANCELLED_ERROR, publisher
                )
                raise
            except RunSuperseded:
                self._agent_finished(agent, "failed", called)
                raise  # the turn is another run's now: nothing of it is this run's to write
            except (AgentError, TimeoutError) as exc:
                self._agent_finished(agent, "failed", called)
                failure = _agent_failure(exc, start, timeout_ms)
                log.warning(
                    "turn %d of %s failed: %s",
                    start.turn.index,
                    session_id,
                    failure.message,
                    exc_info=exc.__cause__ is not None and not isinstance(exc, TimeoutError),
                )
                await self._record_unfinished(
                    start, run_id, TurnStatus.FAILED, failure.message, publisher
                )
                raise failure from exc
            except Exception:
                self._agent_finished(agent, "failed", called)
                # Not the agent's failure but the service's own: INTERNAL (the servicer
                # logs the trace).
                log.warning("turn %d of %s failed in the service", start.turn.index, session_id)
                await self._record_unfinished(
                    start, run_id, TurnStatus.FAILED, INTERNAL_ERROR, publisher
                )
                raise
            self._agent_finished(agent, "completed", called)

            outcome = TurnOutcome(
                TurnStatus.COMPLETED,
                output="".join(reply),
                state_delta=state_delta,
                usage=usage,
                items=_numbered(start, text, done, "".join(reply), self._clock()),
            )
            commit = _Commit(store, start, run_id, outcome, await publisher.rest())
            try:
                turn, session = await commit(self._clock())
            except StoreUnavailable:
                # The reply is whole: commit it once the store answers again (a failover
                # takes seconds), so that a retry of its request id, which attaches to the
                # turn, gets it, rather than waiting out the lease to run the turn again.
                self._commit_later(commit, agent)
                raise
        observer.turn_committed(agent=agent, turn=turn, session=session)
        yield RunCompleted(turn, session)
        # Reached once the caller took the completed event: off the response path.
        self._compactor.compact_later(session)

    def _commit_later(self, commit: _Commit, agent: str) -> None:
        task = asyncio.create_task(self._retry_commit(commit, agent))
        # Shutdown waits for it as for a detached run (stop_detached).
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def _retry_commit(self, commit: _Commit, agent: str) -> None:
        """Commits a finished turn whose commit found the store unavailable, trying again
        for one lease: after it, a retry of the request id may run the turn again."""
        session = commit.start.session
        deadline = time.monotonic() + self._policy.turn_lease_ms / 1000
        with self._in_flight.track():
            while time.monotonic() < deadline:
                await asyncio.sleep(COMMIT_RETRY_S)
                try:
                    turn, committed = await commit(self._clock())
                except StoreUnavailable:
                    continue
                except RunSuperseded:
                    # The first commit went through after all, or the turn is not this
                    # run's any more (lost in a failover, or taken over): nothing to do.
                    return
                log.info(
                    "turn %d of %s committed on a retry, the store having been unavailable",
                    turn.index,
                    session.session_id,
                )
                self._observer.turn_committed(agent=agent, turn=turn, session=committed)
                self._compactor.compact_later(committed)
                return
        log.warning(
            "turn %d of %s was not committed: the store stayed unavailable through its "
            "lease; a retry of its request id runs it again",
            commit.start.turn.index,
            session.session_id,
        )

    def _agent_finished(self, agent: str, outcome: AgentOutcome, called: float) -> None:
        self._observer.agent_finished(
            agent=agent, outcome=outcome, seconds=time.perf_counter() - called
        )

    def _agent_item(self, item: Item, position: int) -> Item:
        # An agent's item must be one a caller could have appended.
        try:
            validation.items(
                [item],
                max_items=1,
                max_payload_bytes=self._policy.max_item_bytes,
                field=f"item {position}",
            )
        except InvalidArgument as error:
            raise AgentError(f"its {error.message}") from None
        return item

    def _check_agent_state(self, session: Session, delta: StateDelta) -> None:
        # The agent's change must leave a state the session could have been given.
        state = {k: v for k, v in session.state.items() if k not in delta.delete}
        state.update(delta.set)
        try:
            validation.state(state, max_bytes=self._policy.max_state_bytes)
        except InvalidArgument as error:
            raise AgentError(f"its state change was refused: {error.message}") from None

    async def _record_unfinished(
        self,
        start: TurnStart,
        run_id: str,
        status: TurnStatus,
        error: str,
        publisher: RunPublisher | None,
    ) -> None:
        # A task of its own, shielded: the caller's cancellation must not stop the
        # write that keeps the user's input with an honest status, and shutdown
        # waits for it (settle) before closing the store.
        await asyncio.shield(self._write_unfinished(start, run_id, status, error, publisher))

    async def _write_unfinished(
        self,
        start: TurnStart,
        run_id: str,
        status: TurnStatus,
        error: str,
        publisher: RunPublisher | None,
    ) -> None:
        session = start.session
        try:
            with self._in_flight.track():
                pending = await publisher.rest() if publisher is not None else []
                await self.store.app(session.app).finish_turn(
                    user_id=session.user_id,
                    session_id=session.session_id,
                    turn=start.turn,
                    run_id=run_id,
                    outcome=TurnOutcome(status, error=error),
                    now_ms=self._clock(),
                    pending=pending,
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


@dataclasses.dataclass(frozen=True)
class _Commit:
    """A finished turn's commit, as many times as it takes (fenced by the run id)."""

    store: SessionStore
    start: TurnStart
    run_id: str
    outcome: TurnOutcome
    pending: list[SessionEvent]

    async def __call__(self, now_ms: int) -> tuple[Turn, Session]:
        session = self.start.session
        return await self.store.finish_turn(
            user_id=session.user_id,
            session_id=session.session_id,
            turn=self.start.turn,
            run_id=self.run_id,
            outcome=self.outcome,
            now_ms=now_ms,
            pending=self.pending,
        )


async def _replayed(start: TurnStart) -> AsyncGenerator[RunEvent, None]:
    yield RunStarted(start.turn.index, replayed=True)
    if start.turn.output:
        yield RunDelta(start.turn.output)
    yield RunCompleted(start.turn, start.session)


def _numbered(
    start: TurnStart, text: str, done: list[Item], reply: str, now_ms: int
) -> tuple[Item, ...]:
    """A completed turn's items as stored: the user's message, the agent's items, its
    reply; numbered on from the session's last item (none is written while a turn runs)."""
    index = start.turn.index
    sequence = start.session.last_item_sequence + 1
    numbered = [_message("user", text, sequence, index, now_ms)]
    for item in done:
        sequence += 1
        numbered.append(
            dataclasses.replace(
                item,
                sequence=sequence,
                turn_index=index,
                create_time_ms=now_ms,
                item_id="",  # an agent's ids are not the session's: they are never deduplicated
            )
        )
    if reply:
        numbered.append(_message("assistant", reply, sequence + 1, index, now_ms))
    return tuple(numbered)


def _message(role: str, text: str, sequence: int, turn_index: int, now_ms: int) -> Item:
    payload = json.dumps({"role": role, "content": text}, ensure_ascii=False)
    return Item(
        ItemType.MESSAGE,
        payload,
        role=role,
        sequence=sequence,
        turn_index=turn_index,
        create_time_ms=now_ms,
    )


def _agent_context(start: TurnStart) -> AgentContext:
    session = start.session
    return AgentContext(
        session_id=session.session_id,
        user_id=session.user_id,
        agent_id=session.agent_id,
        turn_index=start.turn.index,
        state=session.state,
        summary=session.summary,
        history=_with_items(start) if start.history_items else start.history,
    )


def _with_items(start: TurnStart) -> list[Turn]:
    """The history's turns, each with its items among those read."""
    by_turn: dict[int, list[Item]] = {}
    for item in start.history_items:
        by_turn.setdefault(item.turn_index, []).append(item)
    # The newest items read may begin inside a turn: that turn gets none (its text views
    # stand for it) rather than a tail without its message or its tool calls.
    oldest = start.history_items[0].sequence
    return [
        dataclasses.replace(turn, items=tuple(by_turn.get(turn.index, ())))
        if turn.first_item_sequence >= oldest
        else turn
        for turn in start.history
    ]


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
