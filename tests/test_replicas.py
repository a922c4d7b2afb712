"""Stateless replicas: two servers on one Redis (or cluster) serve the same sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import field_mask_pb2

from agent_sessions.server import SessionServer
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, reply_of, rpc_error, run, state_of, turns


@pytest.fixture
async def replicas(store_url: str, key_prefix: str) -> AsyncIterator[list[Stub]]:
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


async def test_every_call_may_go_to_either_replica(replicas: list[Stub]) -> None:
    a, b = replicas
    session = await create(a, user_id="traveller")
    ids = {"session_id": session.session_id, "user_id": "traveller"}

    first = await run(b, session, "How's the weather in Shanghai?")
    second = await run(a, session, "What about Beijing?")
    state = pb.Session(
        session_id=session.session_id, user_id="traveller", state_json='{"city":"Beijing"}'
    )
    await b.UpdateSession(
        pb.UpdateSessionRequest(
            session=state, update_mask=field_mask_pb2.FieldMask(paths=["state_json"])
        )
    )
    compressed = await a.CompressSession(pb.CompressSessionRequest(**ids, keep_last=1))
    read = await b.GetSession(pb.GetSessionRequest(**ids))
    history = await turns(a, session)
    await b.EndSession(pb.EndSessionRequest(**ids))
    refused = await rpc_error(run(a, session, "One more?"))

    assert reply_of(first).startswith("Echo (turn 1)")
    assert 'previous: "How\'s the weather in Shanghai?"' in reply_of(second)
    assert compressed.folded_turns == 1
    assert (read.turn_count, read.folded_turns, state_of(read)) == (2, 1, {"city": "Beijing"})
    assert [t.index for t in history] == [2]
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
