"""The session service as the OpenAI Agents SDK's session store.

::

    from agents import Agent, Runner
    from agent_sessions_client.openai_agents import GrpcSession

    session = GrpcSession("conversation-1", user_id="u-1", target="sessions:50051")
    result = await Runner.run(agent, "How's the weather in Shanghai?", session=session)

``GrpcSession`` implements the SDK's ``Session`` protocol: each SDK item is one item of
the service's history (an external agent's session, created on first use), stored as
the SDK's JSON and read back equal field for field. Needs the ``openai-agents`` extra.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from agents.memory.session import _CompactionSnapshot
from agents.memory.session_settings import SessionSettings, resolve_session_limit
from agentsessions.sessions.v1 import sessions_pb2 as pb

from agent_sessions_client._async import AsyncSession, AsyncSessionClient
from agent_sessions_client._errors import AbortedError, AlreadyExistsError, NotFoundError
from agent_sessions_client._loops import LoopClients
from agent_sessions_client._types import Item, item

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

__all__ = ["GrpcSession"]

MAX_ITEMS_PER_APPEND = 100
"""The server's default --max-items-per-append: longer adds go in several appends."""
_MAX_PAGE = 1000
"""The largest page of items the server sends."""


class GrpcSession:
    """The history of one conversation, kept by a session server, for ``Runner.run``,
    ``Runner.run_sync`` and ``Runner.run_streamed`` (``session=``).

    Give the server's ``target`` address ("host:port"; ``SESSIONS_ADDRESS`` or
    127.0.0.1:50051 when both it and ``client`` are omitted) and this keeps a client per
    event loop (made with ``client_options``, the keyword arguments of
    ``AsyncSessionClient`` such as ``tls`` and ``token``), so one session object serves
    ``run_sync`` and ``run`` alike; or give an ``AsyncSessionClient`` to share (used on
    its own loop only). The session is the
    user's ``session_id`` in ``app``, created on the first write with ``agent_id`` and
    the server's defaults unless ``ttl`` or ``idle_timeout`` say otherwise.

    Every add is one atomic append, retried with its request id on UNAVAILABLE (never
    stored twice); a pop takes the newest item atomically (two pops never get the same
    one); the SDK's compaction replaces the history in one atomic step, refused (the
    history kept) if another writer added items since this object last read them.
    """

    def __init__(
        self,
        session_id: str,
        *,
        user_id: str,
        target: str | None = None,
        client: AsyncSessionClient | None = None,
        client_options: Mapping[str, Any] | None = None,
        app: str = "",
        agent_id: str = "openai-agents",
        ttl: timedelta | None = None,
        idle_timeout: timedelta | None = None,
        session_settings: SessionSettings | None = None,
        timeout: float | None = None,
    ) -> None:
        self.session_id = session_id
        self.session_settings = session_settings
        self.user_id = user_id
        self.app = app
        self.agent_id = agent_id
        self._clients = LoopClients(target, client, client_options)
        self._ttl = ttl
        self._idle_timeout = idle_timeout
        self._timeout = timeout
        # The newest item this object read or wrote: what a compaction replaces.
        self._newest_seen: int | None = None

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest ``limit`` items (all when None and the settings set none), oldest
        first; none when the session does not exist yet."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit is not None and limit <= 0:
            return []
        try:
            stored = await self._read(limit)
        except NotFoundError:
            return []
        self._newest_seen = stored[-1].sequence if stored else 0
        return [_sdk_item(message) for message in stored]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Appends ``items`` (one atomic append per 100), creating the session first if
        it does not exist."""
        if not items:
            return
        messages = [_service_item(entry) for entry in items]
        request_id = secrets.token_hex(12)
        for start in range(0, len(messages), MAX_ITEMS_PER_APPEND):
            chunk = messages[start : start + MAX_ITEMS_PER_APPEND]
            written = await self._append(chunk, f"{request_id}-{start}")
            self._newest_seen = written[-1].sequence if written else self._newest_seen

    async def pop_item(self) -> TResponseInputItem | None:
        """Removes and returns the newest item (None when there is none)."""
        try:
            popped = await self._handle().pop_item(timeout=self._timeout)
        except NotFoundError:
            return None
        self._newest_seen = None  # unknown until the next read
        return None if popped is None else _sdk_item(popped)

    async def clear_session(self) -> None:
        """Removes every item (the session itself stays, numbering goes on)."""
        try:
            await self._handle().clear_items(timeout=self._timeout)
        except NotFoundError:
            return
        self._newest_seen = 0

    async def close(self) -> None:
        """Closes the client this object made for the running loop."""
        await self._clients.close()

    async def _atomic_replace_items(self, items: list[TResponseInputItem]) -> bool:
        # The SDK's compaction session (OpenAIResponsesCompactionSession) calls this to
        # swap the history for its compacted form in one step; False makes it clear and
        # add instead, which is not atomic, so only a replace too long for one write
        # says False. A stale one raises AbortedError: the history stays as it is.
        if len(items) > MAX_ITEMS_PER_APPEND:
            return False
        written = await self._handle().replace_items(
            0,
            [item(_service_item(entry)) for entry in items],
            expected_last_sequence=self._newest_seen,
            timeout=self._timeout,
        )
        self._newest_seen = written[-1].sequence if written else None
        return True

    # The hot path (a read and an add each turn) goes to the messages themselves: an
    # item's payload is the SDK's item, so nothing else of it needs decoding.

    async def _read(self, limit: int | None) -> list[pb.Item]:
        """The newest ``limit`` items (all when None), oldest first. Page by page, not
        with an async generator: run_sync shuts the loop's generators down after each run
        and leaves the loop open, so one made there on the next run would be refused."""
        client = self._clients.current()
        newest_first = limit is not None
        stored: list[pb.Item] = []
        token = ""
        while limit is None or len(stored) < limit:
            request = pb.ListItemsRequest(
                session_id=self.session_id,
                user_id=self.user_id,
                app=self.app,
                page_size=0 if limit is None else min(limit - len(stored), _MAX_PAGE),
                page_token=token,
                order_by="sequence desc" if newest_first else "sequence",
            )
            page: pb.ListItemsResponse = await client._call(
                client._stub.ListItems, request, self._timeout
            )
            stored += page.items
            token = page.next_page_token
            if not token:
                break
        if newest_first:
            stored.reverse()
        return stored

    async def _get_compaction_snapshot(
        self, limit: int, *, prune_prefix: Callable[[TResponseInputItem], bool] | None = None
    ) -> _CompactionSnapshot | None:
        # The SDK's automatic compaction reads the newest ``limit`` items and later swaps
        # a suffix of them for its compacted form: one ReplaceItems of the items from
        # that suffix on, conditional on the newest item read, so the swap is refused
        # (False: the SDK keeps the history) if any writer changed the history meanwhile.
        # Pruning expired items (an encrypting wrapper's) is left to the SDK's fallback.
        if prune_prefix is not None or limit <= 0:
            return None
        try:
            stored = await self._read(limit + 1)  # one more: are there older items?
        except NotFoundError:
            return None
        complete = len(stored) <= limit
        stored = stored[-limit:]
        newest = stored[-1].sequence if stored else 0

        async def replace_suffix(start: int, output: list[TResponseInputItem]) -> bool:
            if start >= len(stored) or len(output) > MAX_ITEMS_PER_APPEND:
                return False
            try:
                await self._handle().replace_items(
                    stored[start].sequence - 1,
                    [item(_service_item(entry)) for entry in output],
                    expected_last_sequence=newest,
                    timeout=self._timeout,
                )
            except (AbortedError, NotFoundError):
                return False
            self._newest_seen = None  # unknown until the next read
            return True

        return _CompactionSnapshot([_sdk_item(m) for m in stored], complete, replace_suffix)

    async def _append(self, items: list[pb.Item], request_id: str) -> Sequence[pb.Item]:
        client = self._clients.current()
        request = pb.AppendItemsRequest(
            session_id=self.session_id,
            user_id=self.user_id,
            app=self.app,
            items=items,
            request_id=request_id,
        )
        try:
            response: pb.AppendItemsResponse = await client._call(
                client._stub.AppendItems, request, self._timeout
            )
        except NotFoundError:
            await self._create()
            response = await client._call(client._stub.AppendItems, request, self._timeout)
        return response.items

    async def _create(self) -> None:
        # Another writer may have created it meanwhile.
        with contextlib.suppress(AlreadyExistsError):
            await self._clients.current().create_session(
                user_id=self.user_id,
                agent_id=self.agent_id,
                session_id=self.session_id,
                app=self.app,
                ttl=self._ttl,
                idle_timeout=self._idle_timeout,
                external_agent=True,
                timeout=self._timeout,
            )

    def _handle(self) -> AsyncSession:
        # A handle needs no read first: its calls name the session by these ids, and
        # the rest of its info (unread, so only a placeholder) is never looked at here.
        message = pb.Session(
            session_id=self.session_id,
            user_id=self.user_id,
            app=self.app,
            status=pb.SESSION_STATUS_ACTIVE,
        )
        return AsyncSession(self._clients.current(), message)


def _service_item(entry: TResponseInputItem) -> pb.Item:
    """The service's item of an SDK item: its JSON as the payload, its kind as the type."""
    data = cast(Mapping[str, Any], entry)
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    kind = str(data.get("type") or "message")  # an easy input message has no type
    call_id = str(data.get("call_id") or "")
    if kind == "message":
        role = str(data.get("role") or "")
        return pb.Item(type=pb.ITEM_TYPE_MESSAGE, payload_json=payload, role=role)
    if kind == "reasoning":
        return pb.Item(type=pb.ITEM_TYPE_REASONING, payload_json=payload)
    if kind.endswith("_call_output"):
        return pb.Item(
            type=pb.ITEM_TYPE_TOOL_RESULT, payload_json=payload, type_name=kind, call_id=call_id
        )
    if kind.endswith("_call") and call_id:
        return pb.Item(
            type=pb.ITEM_TYPE_TOOL_CALL,
            payload_json=payload,
            type_name=kind,
            name=str(data.get("name") or ""),
            call_id=call_id,
        )
    return pb.Item(type=pb.ITEM_TYPE_OTHER, payload_json=payload, type_name=kind)


def _sdk_item(stored: pb.Item | Item) -> TResponseInputItem:
    return cast("TResponseInputItem", json.loads(stored.payload_json))
