"""Items written and popped concurrently through two server replicas on one Redis (or
cluster): each append is one turn whose items are consecutive and stored once, however
the writers and their retries interleave, and no two pops get the same item."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from grpc import StatusCode

from agent_sessions.server import SessionServer
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, error_info, turns

WRITERS = ("a", "b")
APPENDS = 20  # per writer
ITEMS_PER_APPEND = 3


@pytest.fixture
async def replicas(store_url: str, key_prefix: str) -> AsyncIterator[list[Stub]]:
    """Two servers on one store, and a stub of each (as tests/test_replicas.py)."""
    if store_url == "memory://":
        pytest.skip("the memory store lives in one process: replicas need Redis")
    servers = [SessionServer(server_settings(store_url, key_prefix)) for _ in range(2)]
    channels = []
    try:
        for server in servers:
            await server.start()
            channels.append(grpc.aio.insecure_channel(server.address))
        yield [Stub(channel) for channel in channels]
    finally:
        for channel in channels:
            await channel.close(None)
        for server in servers:
            await server.stop(0)


def one_append(session: pb.Session, writer: str, n: int, **fields: Any) -> pb.AppendItemsRequest:
    """Append ``n`` of ``writer``: its items say whose they are and where they go."""
    items = [
        pb.Item(
            type=pb.ITEM_TYPE_MESSAGE,
            role="user" if k == 0 else "assistant",
            item_id=f"{writer}-{n}-{k}",
            payload_json=json.dumps({"writer": writer, "n": n, "k": k, "text": "上海 ☀"}),
        )
        for k in range(ITEMS_PER_APPEND)
    ]
    return pb.AppendItemsRequest(
        session_id=session.session_id, user_id=session.user_id, items=items, **fields
    )


def origin(item: pb.Item) -> tuple[str, int, int]:
    payload = json.loads(item.payload_json)
    return payload["writer"], payload["n"], payload["k"]


async def all_items(stub: Stub, session: pb.Session) -> list[pb.Item]:
    request = pb.ListItemsRequest(
        session_id=session.session_id, user_id=session.user_id, page_size=100
    )
    found: list[pb.Item] = []
    while True:
        page = await stub.ListItems(request)
        found += page.items
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


def assert_whole_turns(stored: list[pb.Item], appends: int) -> None:
    """Every append is one turn of consecutive items, in the order sent, stored once."""
    by_turn: dict[int, list[pb.Item]] = defaultdict(list)
    for item in stored:
        by_turn[item.turn_index].append(item)
    assert len(by_turn) == appends
    seen: set[tuple[str, int]] = set()
    for turn_items in by_turn.values():
        first = turn_items[0].sequence
        assert [i.sequence for i in turn_items] == list(range(first, first + ITEMS_PER_APPEND))
        origins = [origin(i) for i in turn_items]
        writer, n, _ = origins[0]
        assert origins == [(writer, n, k) for k in range(ITEMS_PER_APPEND)]
        assert (writer, n) not in seen, f"append {writer}-{n} stored twice"
        seen.add((writer, n))


async def test_concurrent_appends_through_two_replicas_are_whole_and_stored_once(
    replicas: list[Stub],
) -> None:
    session = await create(replicas[0], agent_id="my-framework-agent", external_agent=True)

    async def writer(index: int, name: str) -> list[tuple[int, pb.AppendItemsResponse]]:
        own, other = replicas[index], replicas[1 - index]
        answered = []
        for n in range(APPENDS):
            request = one_append(session, name, n, request_id=f"{name}-{n}")
            if n % 4 == 0:
                # A client that timed out and retried on the other replica: both land.
                both = await asyncio.gather(own.AppendItems(request), other.AppendItems(request))
                answered += [(n, response) for response in both]
            else:
                answered.append((n, await own.AppendItems(request)))
            if n % 5 == 0:
                # A retry after the answer, on the other replica.
                answered.append((n, await other.AppendItems(request)))
        return answered

    results = await asyncio.gather(*(writer(i, name) for i, name in enumerate(WRITERS)))

    stored = await all_items(replicas[1], session)
    assert len(stored) == len(WRITERS) * APPENDS * ITEMS_PER_APPEND
    assert len({i.sequence for i in stored}) == len(stored)
    assert_whole_turns(stored, len(WRITERS) * APPENDS)
    # Every acknowledged append is there, as it was answered, and retries answered alike.
    by_sequence = {item.sequence: item for item in stored}
    first_answer: dict[tuple[str, int], list[pb.Item]] = {}
    for name, answered in zip(WRITERS, results, strict=True):
        for n, response in answered:
            items = list(response.items)
            assert [by_sequence.get(i.sequence) for i in items] == items
            assert first_answer.setdefault((name, n), items) == items
    assert len(first_answer) == len(WRITERS) * APPENDS
    final = await replicas[0].GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id=session.user_id)
    )
    assert (final.total_turns, final.last_item_sequence) == (len(WRITERS) * APPENDS, len(stored))
    history = await turns(replicas[0], session)
    assert {t.status for t in history} == {pb.TURN_STATUS_COMPLETED}


async def test_optimistic_writers_never_both_append_after_the_same_item(
    replicas: list[Stub],
) -> None:
    """Writers that name the newest item they read: of two that read the same, one wins
    and the other is told so (ABORTED SEQUENCE_MISMATCH) and reads again."""
    session = await create(replicas[0], agent_id="my-framework-agent", external_agent=True)
    appends = 8

    async def writer(index: int, name: str) -> tuple[list[tuple[int, int]], int]:
        stub = replicas[index]
        won: list[tuple[int, int]] = []  # (the newest item read, the first item written)
        lost = 0
        for n in range(appends):
            while True:
                newest = await stub.ListItems(
                    pb.ListItemsRequest(
                        session_id=session.session_id,
                        user_id=session.user_id,
                        order_by="sequence desc",
                        page_size=1,
                    )
                )
                read = newest.items[0].sequence if newest.items else 0
                request = one_append(session, name, n, expected_last_sequence=read)
                try:
                    response = await stub.AppendItems(request)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == StatusCode.ABORTED
                    assert error_info(error).reason == "SEQUENCE_MISMATCH"
                    lost += 1
                    continue
                won.append((read, response.items[0].sequence))
                break
        return won, lost

    results = await asyncio.gather(*(writer(i, name) for i, name in enumerate(WRITERS)))

    won = [pair for pairs, _ in results for pair in pairs]
    assert sorted(read for read, _ in won) == [
        k * ITEMS_PER_APPEND for k in range(len(WRITERS) * appends)
    ]
    assert all(first == read + 1 for read, first in won)
    stored = await all_items(replicas[1], session)
    assert [i.sequence for i in stored] == list(range(1, len(stored) + 1))
    assert_whole_turns(stored, len(WRITERS) * appends)


async def test_concurrent_pops_through_two_replicas_never_return_the_same_item(
    replicas: list[Stub],
) -> None:
    session = await create(replicas[0], agent_id="my-framework-agent", external_agent=True)
    for n in range(10):
        await replicas[n % 2].AppendItems(one_append(session, "w", n))
    request = pb.PopItemRequest(session_id=session.session_id, user_id=session.user_id)

    popped = await asyncio.gather(*(replicas[k % 2].PopItem(request) for k in range(40)))

    got = [p.item.sequence for p in popped if p.HasField("item")]
    assert sorted(got) == list(range(1, 31))
    assert await all_items(replicas[0], session) == []


async def test_pops_racing_appends_split_the_items_between_them(replicas: list[Stub]) -> None:
    """Every item written is either popped (once) or still there, never both, never lost."""
    session = await create(replicas[0], agent_id="my-framework-agent", external_agent=True)
    request = pb.PopItemRequest(session_id=session.session_id, user_id=session.user_id)

    async def append_all() -> list[pb.Item]:
        written: list[pb.Item] = []
        for n in range(15):
            written += (await replicas[n % 2].AppendItems(one_append(session, "w", n))).items
        return written

    async def pop_many(stub: Stub) -> list[pb.Item]:
        popped = []
        for _ in range(15):
            answer = await stub.PopItem(request)
            if answer.HasField("item"):
                popped.append(answer.item)
        return popped

    written, *poppers = await asyncio.gather(append_all(), *(pop_many(s) for s in replicas))

    popped = [item for items in poppers for item in items]
    remaining = await all_items(replicas[1], session)
    assert len({i.sequence for i in popped}) == len(popped)
    assert sorted([*popped, *remaining], key=lambda i: i.sequence) == written
