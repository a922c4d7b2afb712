"""The session service as Google ADK's session service.

::

    from google.adk.runners import Runner
    from agent_sessions_client.adk import GrpcSessionService

    runner = Runner(
        app_name="weather", agent=agent, session_service=GrpcSessionService("sessions:50051")
    )

``GrpcSessionService`` implements ADK's ``BaseSessionService``. ADK's app is the
service's app, and each ADK session one of the service's sessions (an external agent's):
each event is one item of its history, stored as the event's JSON and read back equal
field for field, with the event's state delta committed to the session, user and app
state in the same atomic write. Appending through a ``Session`` object that another
writer has overtaken raises ADK's ``StaleSessionError``, as ``DatabaseSessionService``
does, and writes nothing. Needs the ``adk`` extra. See docs/adk.md.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError as AdkAlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from pydantic_core import to_jsonable_python

from agent_sessions_client._async import AsyncSession, AsyncSessionClient
from agent_sessions_client._errors import AbortedError, AlreadyExistsError, NotFoundError
from agent_sessions_client._loops import LoopClients
from agent_sessions_client._types import Item, ItemType, SessionInfo

__all__ = ["LIST_ALL_USERS_MESSAGE", "STALE_SESSION_MESSAGE", "GrpcSessionService"]

STALE_SESSION_MESSAGE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)
"""What a stale append raises with: DatabaseSessionService's own words."""

LIST_ALL_USERS_MESSAGE = (
    "GrpcSessionService.list_sessions needs a user_id: the session service lists one "
    "user's sessions of an app at a time (ListSessions takes a user_id), never every "
    "user's. Call list_sessions(app_name=..., user_id=...) for each user you know of "
    "(see docs/adk.md)."
)

_PAGE_SIZE = 1000
"""The largest page the server sends (items and sessions): the fewest round trips."""

_MAX_LABEL = 128
"""The longest role, name, call id and item id the server takes; longer ones are cut."""


class GrpcSessionService(BaseSessionService):
    """ADK's sessions, kept by a session server: for ``Runner(session_service=...)``.

    Give the server's ``target`` address ("host:port"; ``SESSIONS_ADDRESS`` or
    127.0.0.1:50051 when both it and ``client`` are omitted) and this keeps a client per
    event loop (made with ``client_options``, the keyword arguments of
    ``AsyncSessionClient`` such as ``tls`` and ``token``), so one service object serves
    ``Runner.run_async`` and ``Runner.run`` (whose every call runs on a loop of its own)
    alike; or give an ``AsyncSessionClient`` to share (used on its own loop only).
    Sessions are created as external agents' sessions labelled ``agent_id``, with the
    server's ttl and idle timeout unless ``ttl`` or ``idle_timeout`` say otherwise;
    ``timeout`` bounds each call (the client's default when None).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        client: AsyncSessionClient | None = None,
        client_options: Mapping[str, Any] | None = None,
        agent_id: str = "adk",
        ttl: timedelta | None = None,
        idle_timeout: timedelta | None = None,
        timeout: float | None = None,
    ) -> None:
        self.agent_id = agent_id
        self._clients = LoopClients(target, client, client_options)
        self._ttl = ttl
        self._idle_timeout = idle_timeout
        self._timeout = timeout

    async def __aenter__(self) -> GrpcSessionService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the client this object made for the running loop (a given client stays
        open: its owner closes it)."""
        await self._clients.close()

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Creates the session (a generated id when none is given) with ``state``: its
        ``user:`` and ``app:`` keys go to the user's and the app's state, ``temp:`` keys
        nowhere. Raises ADK's ``AlreadyExistsError`` if the id is taken."""
        chosen = session_id or str(uuid.uuid4())
        try:
            handle = await self._clients.current().create_session(
                user_id=user_id,
                agent_id=self.agent_id,
                session_id=chosen,
                state=_json_safe(state) if state else None,
                app=app_name,
                ttl=self._ttl,
                idle_timeout=self._idle_timeout,
                external_agent=True,
                timeout=self._timeout,
            )
        except AlreadyExistsError:
            raise AdkAlreadyExistsError(f"Session with id {chosen} already exists.") from None
        return _session(handle.info, app_name, events=[], newest=_unread(handle.info))

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """The session with its events (the ``num_recent_events`` newest, those from
        ``after_timestamp`` on, when ``config`` says so) and its merged state; None when
        it does not exist, has expired or was deleted."""
        handle = self._handle(app_name, user_id, session_id)
        try:
            # The events first, then the state: a state read after them holds at least
            # their deltas, and a writer that came between makes the next append stale
            # instead of slipping past this object.
            newest, events = await self._recent_events(handle, config)
            info = await handle.refresh(timeout=self._timeout)
        except NotFoundError:
            return None
        # No event: the newest item is none (0), whatever was written and removed before.
        mark = newest if newest is not None else (0, info.update_time.timestamp())
        return _session(info, app_name, events=events, newest=mark)

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The user's live sessions of the app, least recently updated first, without
        their events but with their merged state.

        ``user_id`` is required: the service lists one user's sessions at a time, so
        listing every user's (``user_id=None``) raises ``NotImplementedError``.
        """
        if user_id is None:
            raise NotImplementedError(LIST_ALL_USERS_MESSAGE)
        listing = self._clients.current().list_sessions(
            user_id=user_id, app=app_name, page_size=_PAGE_SIZE, timeout=self._timeout
        )
        sessions = [
            _session(handle.info, app_name, events=[], newest=_unread(handle.info))
            async for handle in listing
        ]
        sessions.sort(key=lambda session: (session.last_update_time, session.user_id, session.id))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Deletes the session and its events; nothing happens if there is none, as with
        ADK's own services."""
        try:
            await self._handle(app_name, user_id, session_id).delete(timeout=self._timeout)
        except NotFoundError:
            return

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's state in the app, without the ``user:`` prefix; empty when the user
        has no live session there.

        The service keeps user state as long as the user's longest-lived session, and
        returns it with each session's state, so this reads one of the user's sessions.
        """
        listing = self._clients.current().list_sessions(
            user_id=user_id, app=app_name, page_size=1, timeout=self._timeout
        )
        try:
            first = await anext(listing, None)
        finally:
            await _close(listing)
        if first is None:
            return {}
        prefix = State.USER_PREFIX
        return {k.removeprefix(prefix): v for k, v in first.state.items() if k.startswith(prefix)}

    async def append_event(self, session: Session, event: Event) -> Event:
        """Appends the event and commits its state delta (``temp:`` keys left out) in one
        atomic write, then to ``session``.

        Raises ADK's ``StaleSessionError`` (nothing written) when another writer has
        appended since ``session`` was read or last written through, and
        ``SessionNotFoundError`` when the session is gone. The event's id makes the
        write idempotent: an event the session holds already is not stored again.
        """
        if event.partial:
            return event
        # As BaseSessionService.append_event: temp keys stay in the object, not in storage.
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        if any(seen.id == event.id and seen == event for seen in session.events):
            return event  # appended through this object already
        handle = self._handle(session.app_name, session.user_id, session.id)
        item = _item(event)
        delta = event.actions.state_delta if event.actions else None
        try:
            expected = await self._expected_sequence(handle, session)
            (stored,) = await handle.append_items(
                [item],
                state=_json_safe(delta) if delta else None,
                expected_last_sequence=expected,
                request_id=_event_key(event.id) or None,
                timeout=self._timeout,
            )
        except AbortedError as error:
            if error.reason == "SEQUENCE_MISMATCH":
                raise StaleSessionError(STALE_SESSION_MESSAGE) from error
            raise
        except NotFoundError:
            raise SessionNotFoundError(f"Session {session.id} not found.") from None
        if stored.payload_json != item.payload_json and _event(stored) != event:
            # Another event with this id was stored first: this one was not written.
            raise AdkAlreadyExistsError(
                f"Event with id {event.id} already exists in session {session.id}."
            )
        session._storage_update_marker = str(stored.sequence)
        session.last_update_time = event.timestamp
        return self._commit_event_to_session(session, event)

    async def _recent_events(
        self, handle: AsyncSession, config: GetSessionConfig | None
    ) -> tuple[tuple[int, float] | None, list[Event]]:
        """The events ``config`` asks for, oldest first, and the sequence number and
        timestamp of the newest event (None when there is none), read newest first."""
        limit = config.num_recent_events if config else None
        after = config.after_timestamp if config else None
        size = _PAGE_SIZE if limit is None else max(1, min(limit, _PAGE_SIZE))
        newest: tuple[int, float] | None = None
        events: list[Event] = []
        token, done = "", False
        while not done:
            # The messages themselves: an event needs only its payload decoded.
            page = await handle._items_page(
                newest_first=True,
                after_sequence=0,
                page_size=size,
                page_token=token,
                timeout=self._timeout,
            )
            for stored in page.items:
                event = Event.model_validate_json(stored.payload_json)
                if newest is None:
                    newest = (stored.sequence, event.timestamp)
                # As InMemorySessionService: the events after the newest one before it.
                done = limit == 0 or (after is not None and event.timestamp < after)
                if done:
                    break
                events.append(event)
                done = limit is not None and len(events) >= limit
                if done:
                    break  # before a page more is asked for
            token = page.next_page_token
            done = done or not token
        events.reverse()
        return newest, events

    async def _expected_sequence(self, handle: AsyncSession, session: Session) -> int:
        """The sequence number the session's newest item must have for ``session`` to
        be current: the one this service marked it with when it read or wrote it."""
        marker = session._storage_update_marker
        if marker is not None and marker.isdigit():
            return int(marker)
        # A Session this service did not read (made by hand, or by another service): as
        # DatabaseSessionService, it is current if its newest event is the stored one's.
        newest = await handle.last_items(1, timeout=self._timeout)
        if not session.events and not newest:
            return 0
        if session.events and newest and newest[0].item_id == _event_key(session.events[-1].id):
            return newest[0].sequence
        raise StaleSessionError(STALE_SESSION_MESSAGE)

    def _handle(self, app_name: str, user_id: str, session_id: str) -> AsyncSession:
        # A handle needs no read first: its calls name the session by these ids, and
        # the rest of its info (unread, so only a placeholder) is never looked at here.
        message = pb.Session(
            session_id=session_id,
            user_id=user_id,
            app=app_name,
            status=pb.SESSION_STATUS_ACTIVE,
        )
        return AsyncSession(self._clients.current(), message)


def _session(
    info: SessionInfo, app_name: str, *, events: list[Event], newest: tuple[int, float]
) -> Session:
    """ADK's Session of the service's, marked with ``newest``: the sequence number of
    the newest item it was read or written with, and when that was."""
    sequence, updated = newest
    session = Session(
        id=info.session_id,
        app_name=app_name,
        user_id=info.user_id,
        state=dict(info.state),
        events=events,
        last_update_time=updated,
    )
    session._storage_update_marker = str(sequence)
    return session


def _unread(info: SessionInfo) -> tuple[int, float]:
    """The mark of a session whose items were not read: its last item (the newest unless
    a pop, a clear or a compression took it, which makes an append stale, never wrong)
    and its update time."""
    return info.last_item_sequence, info.update_time.timestamp()


def _item(event: Event) -> Item:
    """The item an event is stored as: its JSON (``Event.model_validate_json`` gives the
    event back, bytes included), typed by its function calls or responses."""
    payload = event.model_dump_json(exclude_none=True)
    role, key = _label(event.author), _event_key(event.id)
    calls = event.get_function_calls()
    if calls:
        name, call_id = _label(calls[0].name or ""), _label(calls[0].id or "")
        return Item(ItemType.TOOL_CALL, payload, role=role, name=name, call_id=call_id, item_id=key)
    responses = event.get_function_responses()
    if responses:
        name, call_id = _label(responses[0].name or ""), _label(responses[0].id or "")
        return Item(
            ItemType.TOOL_RESULT, payload, role=role, name=name, call_id=call_id, item_id=key
        )
    return Item(ItemType.MESSAGE, payload, role=role, item_id=key)


def _event(item: Item) -> Event:
    return Event.model_validate_json(item.payload_json)


def _event_key(event_id: str) -> str:
    """The item id and request id of the event ``event_id``: the id itself when the
    server takes it as both (1-128 characters, no whitespace), else a digest of it; empty
    for an event without id (then stored without either)."""
    if not event_id:
        return ""
    if len(event_id) <= _MAX_LABEL and not any(c.isspace() for c in event_id):
        return event_id
    return "adk-" + hashlib.sha256(event_id.encode()).hexdigest()


def _label(text: str) -> str:
    return text[:_MAX_LABEL]


def _json_safe(values: Mapping[str, Any]) -> dict[str, Any]:
    """State as JSON values, as DatabaseSessionService stores it: rich values (datetimes,
    pydantic models) in their JSON form, any other as its text."""
    safe: dict[str, Any] = to_jsonable_python(dict(values), fallback=str)
    return safe


async def _close(iterator: AsyncIterator[Any]) -> None:
    """Ends a listing left early, so that its pending call is cancelled now."""
    if isinstance(iterator, AsyncGenerator):
        await iterator.aclose()
