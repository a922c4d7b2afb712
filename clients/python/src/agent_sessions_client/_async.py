"""The asyncio client: ``AsyncSessionClient`` and the ``AsyncSession`` handles it returns."""

# _sync.py is generated from _async.py by clients/python/scripts/unasync.py: edit _async.py,
# never _sync.py, then run `make sync-client` (a test fails while the two differ).

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
from agentsessions.sessions.v1 import sessions_pb2 as pb
from agentsessions.sessions.v1 import sessions_pb2_grpc

from agent_sessions_client import _channel, _records, _requests
from agent_sessions_client._errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    from_rpc_error,
)
from agent_sessions_client._types import (
    Compressed,
    Item,
    RunEvent,
    SessionEvent,
    SessionInfo,
    Turn,
    compressed,
    item,
    run_event,
    session_event,
    session_info,
    turn,
)

if TYPE_CHECKING:
    from agentsessions.sessions.v1.sessions_pb2_grpc import SessionServiceAsyncStub


class AsyncSessionClient:
    """Creates, resumes and lists sessions on a session server.

    ``address`` defaults to ``SESSIONS_ADDRESS``, else ``127.0.0.1:50051``. Every call
    takes a ``timeout`` in seconds (``default_timeout`` when omitted; ``run_timeout``
    for runs and resumed runs; none for watches). Reads, watches, ends, runs, resumed
    runs and item appends and replaces are retried on UNAVAILABLE with backoff by the
    channel's service config, until their first answer; creates, updates, deletes,
    compressions, pops and clears are not. Pass
    ``tls=True`` (and certificates if needed) and a bearer ``token`` when the server
    asks for them. Use it as a context manager (``async with``), or call :meth:`close`.

    Sessions belong to an application, named by the ``app`` of the calls that create,
    load, list and import them ("" for the default app): apps keep their sessions, user
    state and app state apart, so the same session id under two apps is two sessions. A
    session's own calls go to its app.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        token: str | None = None,
        default_timeout: float = 10.0,
        run_timeout: float = 300.0,
        retries: bool = True,
    ) -> None:
        self.address = _channel.address(address)
        credentials = _channel.credentials(
            tls=tls,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
        )
        options = _channel.options(retries)
        self._channel = (
            grpc.aio.secure_channel(self.address, credentials, options)
            if credentials
            else grpc.aio.insecure_channel(self.address, options)
        )
        self._stub: SessionServiceAsyncStub = sessions_pb2_grpc.SessionServiceStub(self._channel)
        self._metadata = _channel.metadata(token)
        self.default_timeout = default_timeout
        self.run_timeout = run_timeout

    async def __aenter__(self) -> AsyncSessionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(None)

    async def create_session(
        self,
        *,
        user_id: str,
        agent_id: str,
        session_id: str = "",
        ttl: timedelta | None = None,
        idle_timeout: timedelta | None = None,
        max_turns: int | None = None,
        state: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        request_id: str | None = None,
        external_agent: bool = False,
        app: str = "",
        timeout: float | None = None,
    ) -> AsyncSession:
        """Creates a session; the server's defaults apply to what is left out.

        With a ``session_id``, a ``request_id`` makes the create safe to retry: a retry
        returns the session it made instead of raising ``AlreadyExistsError``. With
        ``external_agent``, the session's agent runs elsewhere (an agent framework, the
        caller's own loop): the caller writes its history with
        :meth:`AsyncSession.append_items`, ``agent_id`` is only a label, and
        :meth:`AsyncSession.run` raises ``FailedPreconditionError`` (``EXTERNAL_AGENT``).
        The session belongs to ``app`` (the default app when empty).
        """
        request = _requests.create(
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            ttl=ttl,
            idle_timeout=idle_timeout,
            max_turns=max_turns,
            state=state,
            labels=labels,
            app=app,
            request_id=request_id,
            external_agent=external_agent,
        )
        return AsyncSession(self, await self._call(self._stub.CreateSession, request, timeout))

    async def load_session(
        self, session_id: str, *, user_id: str, app: str = "", timeout: float | None = None
    ) -> AsyncSession:
        """Resumes a session of ``app`` by id; raises ``NotFoundError`` if it is gone or not
        the user's (or of another app)."""
        request = pb.GetSessionRequest(session_id=session_id, user_id=user_id, app=app)
        return AsyncSession(self, await self._call(self._stub.GetSession, request, timeout))

    async def load_or_create_session(
        self, *, user_id: str, agent_id: str, session_id: str = "", app: str = "", **create: Any
    ) -> AsyncSession:
        """Resumes ``session_id`` if it lives, else creates a session (with that id if given),
        in ``app``."""
        if session_id:
            try:
                return await self.load_session(session_id, user_id=user_id, app=app)
            except NotFoundError:
                pass
        try:
            return await self.create_session(
                user_id=user_id, agent_id=agent_id, session_id=session_id, app=app, **create
            )
        except AlreadyExistsError:  # created by someone else meanwhile
            return await self.load_session(session_id, user_id=user_id, app=app)

    async def list_sessions(
        self,
        *,
        user_id: str,
        agent_id: str = "",
        app: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[AsyncSession]:
        """The user's live sessions of ``app``, most recently active first, across all pages."""
        token = ""
        while True:
            request = pb.ListSessionsRequest(
                user_id=user_id, agent_id=agent_id, app=app, page_size=page_size, page_token=token
            )
            page: pb.ListSessionsResponse = await self._call(
                self._stub.ListSessions, request, timeout
            )
            for message in page.sessions:
                yield AsyncSession(self, message)
            token = page.next_page_token
            if not token:
                return

    async def import_session(
        self,
        record: Mapping[str, Any],
        *,
        user_id: str | None = None,
        app: str | None = None,
        timeout: float | None = None,
    ) -> AsyncSession:
        """Re-creates an exported session (see :meth:`AsyncSession.export`), its history included.

        ``user_id`` gives it another owner, ``app`` another app ("" for the default app;
        by default the record's). Raises ``AlreadyExistsError`` if the id is taken in
        that app, ``InvalidArgumentError`` for a malformed record.
        """
        try:
            request = _records.import_request(record, user_id, app)
        except (KeyError, ValueError, TypeError) as error:
            raise InvalidArgumentError(f"not a session record: {error!r}") from None
        return AsyncSession(self, await self._call(self._stub.ImportSession, request, timeout))

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(
                request,
                timeout=self.default_timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None


class AsyncSession:
    """A session on the server, as last seen: run turns, read its history, change it."""

    def __init__(self, client: AsyncSessionClient, message: pb.Session) -> None:
        self._client = client
        self.info: SessionInfo = session_info(message)

    def __repr__(self) -> str:
        app = f", app={self.app!r}" if self.app else ""
        return (
            f"AsyncSession({self.session_id!r}, user_id={self.user_id!r}, "
            f"agent_id={self.agent_id!r}{app})"
        )

    @property
    def session_id(self) -> str:
        return self.info.session_id

    @property
    def user_id(self) -> str:
        return self.info.user_id

    @property
    def agent_id(self) -> str:
        return self.info.agent_id

    @property
    def app(self) -> str:
        """The application the session belongs to ("" for the default): its calls go there."""
        return self.info.app

    @property
    def state(self) -> dict[str, Any]:
        """The state as last seen (a copy); :meth:`refresh` reads it again."""
        return dict(self.info.state)

    async def run(
        self,
        text: str,
        *,
        request_id: str | None = None,
        detach: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Runs one turn and returns the agent's whole reply (``detach``: see :meth:`stream`)."""
        chunks = [
            chunk
            async for chunk in self.stream(
                text, request_id=request_id, detach=detach, timeout=timeout
            )
        ]
        return "".join(chunks)

    async def stream(
        self,
        text: str,
        *,
        request_id: str | None = None,
        detach: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[str]:
        """Runs one turn, yielding the reply's text as it arrives.

        Stopping the iteration early cancels the run (the turn is kept as CANCELLED),
        unless ``detach``: a detached run goes on without its caller, the agent finishes
        and the turn is stored, and :meth:`resume` follows it again by its
        ``request_id`` (pass one, to know it). A run retried with the ``request_id`` of a
        detached run still in progress attaches to it: the agent is called once.
        :meth:`stream_events` yields the run's events with their sequence numbers.
        """
        client = self._client
        request = _requests.run(
            self.session_id, self.user_id, text, request_id, app=self.app, detach=detach
        )
        call = client._stub.Run(
            request,
            timeout=client.run_timeout if timeout is None else timeout,
            metadata=client._metadata,
        )
        try:
            async for event in call:
                kind = event.WhichOneof("event")
                if kind == "delta":
                    yield event.delta.text
                elif kind == "completed":
                    self.info = session_info(event.completed.session)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    def stream_events(
        self,
        text: str,
        *,
        request_id: str | None = None,
        detach: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Runs one turn, as :meth:`stream` does, yielding its events as :class:`RunEvent`:
        the started event (with the turn's index and, for :meth:`resume`, the run's id),
        the reply's text deltas, the agent's items, and the completed event with the
        stored turn and the session after it.

        The events of a ``detach``-ed run carry their ``sequence``: after a broken
        stream, :meth:`resume` with the ``request_id`` (or the ``run_id``) and the last
        sequence received goes on where it stopped.
        """
        request = _requests.run(
            self.session_id, self.user_id, text, request_id, app=self.app, detach=detach
        )
        return self._run_events(self._client._stub.Run, request, timeout)

    def resume(
        self,
        *,
        run_id: str = "",
        request_id: str = "",
        after_sequence: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[RunEvent]:
        """Re-attaches to a run in progress or just finished (``ResumeRun``), from any
        replica, named by its ``run_id`` or the ``request_id`` it was run with (one of
        them): yields its events after ``after_sequence`` (0: from its start), as
        :meth:`stream_events` does, then its completed event; or raises the error the
        run failed with. A run whose events the server no longer holds raises
        ``NotFoundError``: read its turn with :meth:`turns`.

        Stopping the iteration early leaves the run running.
        """
        request = _requests.resume_run(
            self.session_id,
            self.user_id,
            app=self.app,
            run_id=run_id,
            request_id=request_id,
            after_sequence=after_sequence,
        )
        return self._run_events(self._client._stub.ResumeRun, request, timeout, run_id=run_id)

    async def _run_events(
        self,
        method: grpc.aio.UnaryStreamMultiCallable[Any, pb.RunEvent],
        request: pb.RunRequest | pb.ResumeRunRequest,
        timeout: float | None,
        run_id: str = "",
    ) -> AsyncIterator[RunEvent]:
        client = self._client
        # The call starts with the iteration, not before: an iterator never iterated
        # sends nothing.
        call = method(
            request,
            timeout=client.run_timeout if timeout is None else timeout,
            metadata=client._metadata,
        )
        turn_index = 0
        try:
            async for message in call:
                event = run_event(message, run_id=run_id, turn_index=turn_index)
                run_id, turn_index = event.run_id, event.turn_index
                if event.info is not None:
                    # A run does not change the summary, which the server's event log
                    # (a detached or resumed run's source) leaves out.
                    self.info = dataclasses.replace(event.info, summary=self.info.summary)
                yield event
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    def watch(
        self, *, after_sequence: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[SessionEvent]:
        """Follows the session live (``WatchSession``), yielding what happens to it as
        :class:`SessionEvent`: runs starting, their text and items, turns committed,
        updates, compression, the end, and last its deletion or expiry, after which
        the iteration ends.

        ``after_sequence`` ``None`` (the default) yields live events only, from now; a
        number yields the events after it that the server still holds (0: all it
        holds), then live ones: reconnect with the last event's ``sequence`` to get what
        was missed. When some are no longer held, a ``"gap"`` event says so: re-read
        the session and its history, then go on. ``info`` follows the session as the
        events tell of it (its summary only when it is compressed: :meth:`refresh` reads
        it). ``timeout`` bounds the whole watch (default: none).
        """
        request = _requests.watch(
            self.session_id, self.user_id, app=self.app, after_sequence=after_sequence
        )
        return self._watch(request, timeout)

    async def _watch(
        self, request: pb.WatchSessionRequest, timeout: float | None
    ) -> AsyncIterator[SessionEvent]:
        client = self._client
        call = client._stub.WatchSession(request, timeout=timeout, metadata=client._metadata)
        try:
            async for message in call:
                event = session_event(message)
                if event.info is not None:
                    # Events leave the summary out, but for a compression's.
                    summary = event.info.summary if event.kind == "compressed" else None
                    self.info = dataclasses.replace(
                        event.info, summary=self.info.summary if summary is None else summary
                    )
                yield event
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    async def turns(
        self,
        *,
        newest_first: bool = False,
        page_size: int = 0,
        include_archived: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[Turn]:
        """The whole history, oldest first (or newest first), fetched page by page.

        The history starts after the turns folded into the summary by compression
        (``info.folded_turns``); ``include_archived`` returns those too, in index order,
        when the server keeps them (``--archive-folded-turns``).
        """
        token = ""
        while True:
            request = _requests.list_turns(
                self.session_id,
                self.user_id,
                app=self.app,
                newest_first=newest_first,
                page_size=page_size,
                page_token=token,
                include_archived=include_archived,
            )
            page: pb.ListTurnsResponse = await self._client._call(
                self._client._stub.ListTurns, request, timeout
            )
            for message in page.turns:
                yield turn(message)
            token = page.next_page_token
            if not token:
                return

    async def append_items(
        self,
        items: Iterable[Item],
        *,
        state: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        expected_last_sequence: int | None = None,
        if_unchanged: bool = False,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> list[Item]:
        """Appends items to the history as one completed turn, in one atomic write, and
        returns them as stored (numbered; an item whose ``item_id`` the session already
        holds comes back as stored the first time).

        ``state`` sets top-level state keys and ``remove`` removes some, in the same
        write. The write is conditional when asked: ``expected_last_sequence`` is the
        sequence number of the newest item the caller read (0: no item), and
        ``if_unchanged`` requires the session unchanged since last seen (its etag); when
        stale, nothing is written and ``AbortedError`` (``SEQUENCE_MISMATCH``,
        ``ETAG_MISMATCH``) is raised. A retry with the same ``request_id`` (generated
        when omitted) writes nothing and returns the first append's items.
        """
        request = _requests.append_items(
            self.session_id,
            self.user_id,
            items,
            app=self.app,
            state=state,
            remove=remove,
            expected_last_sequence=expected_last_sequence,
            etag=self.info.etag if if_unchanged else "",
            request_id=request_id,
        )
        response: pb.AppendItemsResponse = await self._client._call(
            self._client._stub.AppendItems, request, timeout
        )
        self.info = session_info(response.session)
        return [item(message) for message in response.items]

    async def items(
        self,
        *,
        newest_first: bool = False,
        after_sequence: int = 0,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[Item]:
        """The history's items, oldest first (or newest first), fetched page by page
        (``page_size`` 0: the server's default, 100); only those after
        ``after_sequence`` when given. Items of turns folded by compression are gone."""
        token = ""
        while True:
            page = await self._items_page(
                newest_first=newest_first,
                after_sequence=after_sequence,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
            )
            for message in page.items:
                yield item(message)
            token = page.next_page_token
            if not token:
                return

    async def last_items(self, n: int, *, timeout: float | None = None) -> list[Item]:
        """The last ``n`` items of the history (fewer if it holds fewer), oldest first:
        what an agent framework reads back as its context. One call up to 1,000."""
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        newest: list[Item] = []
        token = ""
        while len(newest) < n:
            page = await self._items_page(
                newest_first=True,
                after_sequence=0,
                page_size=n - len(newest),
                page_token=token,
                timeout=timeout,
            )
            newest.extend(item(message) for message in page.items[: n - len(newest)])
            token = page.next_page_token
            if not token:
                break
        newest.reverse()
        return newest

    async def _items_page(
        self,
        *,
        newest_first: bool,
        after_sequence: int,
        page_size: int,
        page_token: str,
        timeout: float | None,
    ) -> pb.ListItemsResponse:
        request = _requests.list_items(
            self.session_id,
            self.user_id,
            app=self.app,
            newest_first=newest_first,
            after_sequence=after_sequence,
            page_size=page_size,
            page_token=page_token,
        )
        page: pb.ListItemsResponse = await self._client._call(
            self._client._stub.ListItems, request, timeout
        )
        return page

    async def pop_item(self, *, timeout: float | None = None) -> Item | None:
        """Removes the newest item and returns it (None when the history has none),
        atomically: two concurrent pops never get the same item. Not retried
        automatically (a repeat would pop another item)."""
        request = pb.PopItemRequest(session_id=self.session_id, user_id=self.user_id, app=self.app)
        response: pb.PopItemResponse = await self._client._call(
            self._client._stub.PopItem, request, timeout
        )
        self.info = session_info(response.session)
        return item(response.item) if response.HasField("item") else None

    async def clear_items(self, *, timeout: float | None = None) -> SessionInfo:
        """Removes every item and turn of the history (and the summary); sequence
        numbers and turn indexes go on from where they were."""
        request = pb.ClearItemsRequest(
            session_id=self.session_id, user_id=self.user_id, app=self.app
        )
        response: pb.ClearItemsResponse = await self._client._call(
            self._client._stub.ClearItems, request, timeout
        )
        self.info = session_info(response.session)
        return self.info

    async def replace_items(
        self,
        after_sequence: int,
        items: Iterable[Item],
        *,
        expected_last_sequence: int | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> list[Item]:
        """Replaces the items after ``after_sequence`` (0: every item) with ``items``,
        appended as one new turn with new sequence numbers, atomically: for a client
        that compacts its own history (say, older items into a summary message).

        Conditional on ``expected_last_sequence`` like :meth:`append_items`; a retry
        with the same ``request_id`` (generated when omitted) returns the first
        replace's items. Returns the new items as stored.
        """
        request = _requests.replace_items(
            self.session_id,
            self.user_id,
            after_sequence,
            items,
            app=self.app,
            expected_last_sequence=expected_last_sequence,
            request_id=request_id,
        )
        response: pb.ReplaceItemsResponse = await self._client._call(
            self._client._stub.ReplaceItems, request, timeout
        )
        self.info = session_info(response.session)
        return [item(message) for message in response.items]

    async def export(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The session and its whole history as a JSON-ready record (JSON Lines export).

        The record is consistent even if the session is compressed meanwhile: its turns
        start right after its summary's. A session that keeps changing under the export
        raises ``AbortedError`` after a few reads.
        """
        for _ in range(_records.EXPORT_ATTEMPTS):
            # The turns first, then the session: see _records.snapshot_turns.
            turns = [t async for t in self.turns(timeout=timeout)]
            items = [i async for i in self.items(timeout=timeout)]
            info = await self.refresh(timeout=timeout)
            snapshot = _records.snapshot_turns(info, turns)
            if snapshot is not None:
                return _records.export_record(info, snapshot, items)
        raise _records.changing_session(info)

    async def compress(
        self, keep_last: int | None = None, *, timeout: float | None = None
    ) -> Compressed:
        """Folds all turns but the last ``keep_last`` into the summary (``CompressSession``).

        ``None`` leaves the count to the server (20 by default); 0 folds every finished
        turn. Folded turns leave the history and the agent's context, but still count
        in ``turn_count`` and ``total_turns``. The summary is written by the session's
        agent when it can summarize, else by the server's extractive summarizer. Not
        retried automatically, since it may call a model: on ``AbortedError`` (another
        compression won) or ``UnavailableError``, decide whether to call it again.
        """
        request = _requests.compress(self.session_id, self.user_id, keep_last, app=self.app)
        result = compressed(
            await self._client._call(self._client._stub.CompressSession, request, timeout)
        )
        self.info = result.info
        return result

    async def refresh(self, *, timeout: float | None = None) -> SessionInfo:
        """Reads the session again (state, counts, expiry)."""
        request = pb.GetSessionRequest(
            session_id=self.session_id, user_id=self.user_id, app=self.app
        )
        self.info = session_info(
            await self._client._call(self._client._stub.GetSession, request, timeout)
        )
        return self.info

    async def update(
        self,
        *,
        state: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        ttl: timedelta | None = None,
        idle_timeout: timedelta | None = None,
        max_turns: int | None = None,
        remove: Iterable[str] = (),
        if_unchanged: bool = True,
        timeout: float | None = None,
    ) -> SessionInfo:
        """Replaces the given fields; with ``if_unchanged`` (the default) only if nobody
        changed the session since it was last seen, else ``AbortedError``. A new
        ``state`` replaces the session's own keys and sets the ``user:`` and ``app:``
        keys it names; ``remove`` removes state keys of any scope in the same step."""
        request = _requests.update(
            session_id=self.session_id,
            user_id=self.user_id,
            app=self.app,
            etag=self.info.etag if if_unchanged else "",
            state=state,
            labels=labels,
            ttl=ttl,
            idle_timeout=idle_timeout,
            max_turns=max_turns,
            remove=remove,
        )
        self.info = session_info(
            await self._client._call(self._client._stub.UpdateSession, request, timeout)
        )
        return self.info

    async def update_state(
        self,
        changes: Mapping[str, Any],
        *,
        remove: tuple[str, ...] = (),
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Sets and removes top-level state keys, if the session is unchanged since last seen.

        On ``AbortedError``, :meth:`refresh` and try again.
        """
        state = {k: v for k, v in self.info.state.items() if k not in remove}
        state.update(changes)
        # The user's and the app's keys are removed by name: a new state only sets them.
        info = await self.update(state=state, remove=remove, timeout=timeout)
        return info.state

    async def end(self, *, timeout: float | None = None) -> SessionInfo:
        """Ends the session: readable until it expires, no more turns."""
        request = pb.EndSessionRequest(
            session_id=self.session_id, user_id=self.user_id, app=self.app
        )
        self.info = session_info(
            await self._client._call(self._client._stub.EndSession, request, timeout)
        )
        return self.info

    async def delete(self, *, timeout: float | None = None) -> None:
        """Deletes the session and its history now."""
        request = pb.DeleteSessionRequest(
            session_id=self.session_id, user_id=self.user_id, app=self.app
        )
        await self._client._call(self._client._stub.DeleteSession, request, timeout)
