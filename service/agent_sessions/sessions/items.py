"""A session's items written and read by the caller: the history of an agent that runs
outside the service (append, list, pop, clear, replace)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from agent_sessions import paging, scopes, validation
from agent_sessions.errors import InvalidArgument
from agent_sessions.model import (
    Item,
    ItemsWrite,
    ItemsWritten,
    ItemType,
    Session,
    StateDelta,
    Turn,
    text_of,
)
from agent_sessions.sessions.events import ItemsPage
from agent_sessions.sessions.policy import MAX_PAGE_SIZE, SessionPolicy
from agent_sessions.store import SessionStore

ITEMS_PAGE_SIZE = 100


class ItemLog:
    """Writes and reads the items of checked sessions, in the store (an app's) each call
    is given: each write is one store call."""

    def __init__(self, policy: SessionPolicy, *, clock: Callable[[], int]) -> None:
        self._policy = policy
        self._clock = clock

    async def append(
        self,
        store: SessionStore,
        *,
        user_id: str,
        session_id: str,
        items: Sequence[Item],
        state_delta: StateDelta,
        expected_last_sequence: int | None,
        etag: str,
        request_id: str,
    ) -> ItemsWritten:
        if not items:
            raise InvalidArgument("items", "is required: send at least one item")
        return await self._write(
            store,
            user_id,
            session_id,
            items,
            state_delta=state_delta,
            expected_last_sequence=expected_last_sequence,
            etag=etag,
            request_id=request_id,
            replace_after=None,
        )

    async def replace(
        self,
        store: SessionStore,
        *,
        user_id: str,
        session_id: str,
        after_sequence: int,
        items: Sequence[Item],
        expected_last_sequence: int | None,
        request_id: str,
    ) -> ItemsWritten:
        if after_sequence < 0:
            raise InvalidArgument(
                "after_sequence", f"must be 0 (every item) or positive, got {after_sequence}"
            )
        return await self._write(
            store,
            user_id,
            session_id,
            items,
            state_delta=StateDelta(),
            expected_last_sequence=expected_last_sequence,
            etag="",
            request_id=request_id,
            replace_after=after_sequence,
        )

    async def _write(
        self,
        store: SessionStore,
        user_id: str,
        session_id: str,
        items: Sequence[Item],
        *,
        state_delta: StateDelta,
        expected_last_sequence: int | None,
        etag: str,
        request_id: str,
        replace_after: int | None,
    ) -> ItemsWritten:
        policy = self._policy
        validation.items(
            items,
            max_items=policy.max_items_per_append,
            max_payload_bytes=policy.max_item_bytes,
            field="items",
        )
        validation.request_id(request_id)
        if state_delta.set:
            validation.state(
                state_delta.set, max_bytes=policy.max_state_bytes, field="state_delta_json"
            )
        if expected_last_sequence is not None and expected_last_sequence < 0:
            raise InvalidArgument(
                "expected_last_sequence", f"must not be negative, got {expected_last_sequence}"
            )
        write = ItemsWrite(
            items=tuple(items),
            input=_user_text(items),
            output=_assistant_text(items),
            state_delta=scopes.stored_delta(state_delta),
            request_id=request_id,
            expected_last_sequence=expected_last_sequence,
            expected_etag=etag or None,
            replace_after=replace_after,
        )
        return await store.write_items(
            user_id=user_id, session_id=session_id, write=write, now_ms=self._clock()
        )

    async def list(
        self,
        store: SessionStore,
        *,
        user_id: str,
        session_id: str,
        page_size: int,
        page_token: str,
        newest_first: bool,
        after_sequence: int,
        include_archived: bool = False,
    ) -> ItemsPage:
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", f"must not be negative, got {after_sequence}")
        size = validation.page_size(page_size, default=ITEMS_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        query = {
            "session_id": session_id,
            "newest_first": newest_first,
            "after": after_sequence,
            "include_archived": include_archived,
        }
        # The token keeps the sequence number the next page starts beyond, so items
        # written or removed while a caller pages do not shift the pages.
        bound = (
            paging.integer(paging.decode(page_token, query), "q", minimum=0) if page_token else None
        )
        after, before = after_sequence, None
        if bound is not None:
            if newest_first:
                before = bound
            else:
                after = bound
        page = await store.list_items(
            user_id=user_id,
            session_id=session_id,
            after=after,
            before=before,
            limit=size,
            newest_first=newest_first,
            now_ms=self._clock(),
            include_archived=include_archived,
        )
        token = ""
        if page.more and page.items:
            token = paging.encode(query, {"q": page.items[-1].sequence})
        return ItemsPage(page.items, token)

    async def attached(
        self, store: SessionStore, *, user_id: str, session_id: str, turns: Sequence[Turn]
    ) -> Sequence[Turn]:
        """The turns with their items: one more read, of the sequence range they span."""
        ranged = [t for t in turns if t.first_item_sequence and t.last_item_sequence]
        if not ranged:
            return turns
        low = min(t.first_item_sequence for t in ranged)
        high = max(t.last_item_sequence for t in ranged)
        page = await store.list_items(
            user_id=user_id,
            session_id=session_id,
            after=low - 1,
            before=high + 1,
            limit=high - low + 1,
            newest_first=False,
            now_ms=self._clock(),
        )
        by_turn: dict[int, list[Item]] = {}
        for item in page.items:
            by_turn.setdefault(item.turn_index, []).append(item)
        return [dataclasses.replace(t, items=tuple(by_turn.get(t.index, ()))) for t in turns]

    async def pop(
        self, store: SessionStore, *, user_id: str, session_id: str
    ) -> tuple[Item | None, Session]:
        return await store.pop_item(user_id=user_id, session_id=session_id, now_ms=self._clock())

    async def clear(self, store: SessionStore, *, user_id: str, session_id: str) -> Session:
        return await store.clear_items(user_id=user_id, session_id=session_id, now_ms=self._clock())


def _user_text(items: Sequence[Item]) -> str:
    for item in items:
        if item.type is ItemType.MESSAGE and item.role == "user":
            return text_of(item.payload_json)
    return ""


def _assistant_text(items: Sequence[Item]) -> str:
    return "".join(
        text_of(item.payload_json)
        for item in items
        if item.type is ItemType.MESSAGE and item.role not in ("user", "system")
    )
