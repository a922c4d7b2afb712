"""Long conversations over gRPC: CompressSession, automatic compaction, the context window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb

from agent_sessions.agents import Agent, AgentContext, AgentError, AgentEvent
from agent_sessions.agents.summarizer import SummaryRequest
from agent_sessions.server import SessionServer
from tests import grpc_helpers
from tests.agents import ScriptedAgent
from tests.conftest import server_settings
from tests.grpc_helpers import Stub, create, error_info, refusal, reply_of, rpc_error, run, turns

SHANGHAI = "How's the weather in Shanghai? I fly there tomorrow."
BEIJING = "What about Beijing?"


class SummarizingAgent:
    """Echoes, and summarizes when asked: after ``release`` is set, unless it must fail."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.asked: asyncio.Queue[None] = asyncio.Queue()
        self.release = asyncio.Event()
        self.release.set()
        self.requests: list[SummaryRequest] = []
        self.contexts: list[AgentContext] = []

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        self.contexts.append(context)
        yield f"reply to {text}"

    async def summarize(self, request: SummaryRequest) -> str:
        self.requests.append(request)
        self.asked.put_nowait(None)
        await self.release.wait()
        if self.fail:
            raise AgentError("the model is overloaded")
        return f"The user asked {len(request.turns)} questions about the weather."


@pytest.fixture
def summarizer() -> SummarizingAgent:
    return SummarizingAgent()


def serving(
    request: pytest.FixtureRequest,
    store_url: str,
    agents: Mapping[str, Agent] | None = None,
    **settings: object,
) -> AbstractAsyncContextManager[tuple[SessionServer, Stub]]:
    key_prefix = request.getfixturevalue("key_prefix")
    return grpc_helpers.serving(server_settings(store_url, key_prefix, **settings), agents)


async def compress(
    stub: Stub, session: pb.Session, keep_last: int | None = None
) -> pb.CompressSessionResponse:
    request = pb.CompressSessionRequest(
        session_id=session.session_id, user_id=session.user_id, keep_last=keep_last
    )
    response: pb.CompressSessionResponse = await stub.CompressSession(request)
    return response


async def get(stub: Stub, session: pb.Session) -> pb.Session:
    got: pb.Session = await stub.GetSession(
        pb.GetSessionRequest(session_id=session.session_id, user_id=session.user_id)
    )
    return got


async def with_turns(stub: Stub, count: int, agent_id: str = "echo") -> pb.Session:
    session = await create(stub, agent_id=agent_id)
    for i in range(1, count + 1):
        await run(stub, session, f"Question {i}. More words.")
    return session


async def test_compress_folds_all_but_the_last_keep_last_turns_byte_identical(
    stub: Stub,
) -> None:
    session = await with_turns(stub, 5)
    before = await turns(stub, session)

    response = await compress(stub, session, keep_last=2)

    assert response.folded_turns == 3
    assert await turns(stub, session) == before[3:]
    folded = response.session
    assert (folded.folded_turns, folded.turn_count, folded.total_turns) == (3, 5, 5)
    assert folded.history_bytes == sum(
        len(t.input.encode()) + len(t.output.encode()) for t in before[3:]
    )


async def test_the_extractive_summary_quotes_each_folded_turn(stub: Stub) -> None:
    session = await create(stub)
    await run(stub, session, SHANGHAI)
    await run(stub, session, BEIJING)

    response = await compress(stub, session, keep_last=0)

    assert response.summarizer == "extractive"
    assert response.session.summary == (
        "Turn 1: user: How's the weather in Shanghai? | agent: Echo (turn 1): How's the "
        "weather in Shanghai?\n"
        "Turn 2: user: What about Beijing? | agent: Echo (turn 2): What about Beijing?"
    )


async def test_a_second_compression_adds_to_the_summary(stub: Stub) -> None:
    session = await with_turns(stub, 3)
    first = await compress(stub, session, keep_last=1)
    await run(stub, session, "Question 4. More.")

    second = await compress(stub, session, keep_last=1)

    assert second.folded_turns == 1  # turn 3; turn 4 stays
    assert second.session.summary.startswith(first.session.summary + "\n")
    assert second.session.summary.endswith(
        "Turn 3: user: Question 3. | agent: Echo (turn 3): Question 3."
    )


async def test_turns_after_compression_keep_counting(stub: Stub) -> None:
    session = await with_turns(stub, 3)
    await compress(stub, session, keep_last=0)

    events = await run(stub, session, "next")

    assert events[0].started.turn_index == 4
    assert [t.index for t in await turns(stub, session)] == [4]


async def test_a_short_history_is_left_as_it_is(stub: Stub) -> None:
    session = await with_turns(stub, 2)

    response = await compress(stub, session, keep_last=5)

    assert (response.folded_turns, response.summarizer) == (0, "")
    assert response.session.folded_turns == 0


async def test_keep_last_defaults_to_the_servers_setting(
    request: pytest.FixtureRequest, store_url: str
) -> None:
    async with serving(request, store_url, keep_last_turns=1) as (_, stub):
        session = await with_turns(stub, 4)

        response = await compress(stub, session)

    assert response.folded_turns == 3


async def test_a_negative_keep_last_is_invalid_argument(stub: Stub) -> None:
    session = await create(stub)

    error = await rpc_error(compress(stub, session, keep_last=-1))

    assert refusal(error) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", "keep_last")


async def test_compressing_another_users_session_is_not_found(stub: Stub) -> None:
    session = await with_turns(stub, 2)
    session.user_id = "mallory"

    error = await rpc_error(compress(stub, session, keep_last=0))

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_an_agent_that_can_summarize_writes_the_summary(
    request: pytest.FixtureRequest, store_url: str, summarizer: SummarizingAgent
) -> None:
    async with serving(request, store_url, agents={"smart": summarizer}) as (_, stub):
        session = await with_turns(stub, 3, agent_id="smart")

        response = await compress(stub, session, keep_last=1)

    assert response.summarizer == "agent"
    assert response.session.summary == "The user asked 2 questions about the weather."
    [asked] = summarizer.requests
    assert [t.index for t in asked.turns] == [1, 2]


async def test_a_failing_agent_summarizer_falls_back_to_the_extractive_one(
    request: pytest.FixtureRequest, store_url: str
) -> None:
    failing = SummarizingAgent(fail=True)
    async with serving(request, store_url, agents={"smart": failing}) as (_, stub):
        session = await with_turns(stub, 2, agent_id="smart")

        response = await compress(stub, session, keep_last=0)

    assert response.summarizer == "extractive"
    assert "Turn 1: user: Question 1." in response.session.summary


async def test_a_run_during_compression_keeps_its_turn(
    request: pytest.FixtureRequest, store_url: str, summarizer: SummarizingAgent
) -> None:
    summarizer.release.clear()
    async with serving(request, store_url, agents={"smart": summarizer}) as (_, stub):
        session = await with_turns(stub, 3, agent_id="smart")
        compressing = asyncio.ensure_future(compress(stub, session, keep_last=0))
        await summarizer.asked.get()

        events = await run(stub, session, "while summarizing")
        summarizer.release.set()
        response = await compressing
        history = await turns(stub, session)

    assert reply_of(events) == "reply to while summarizing"
    assert response.folded_turns == 3
    assert [(t.index, t.input, t.output) for t in history] == [
        (4, "while summarizing", "reply to while summarizing")
    ]


async def test_a_turn_running_when_compression_starts_is_not_folded(
    stub: Stub, scripted_agent: ScriptedAgent
) -> None:
    session = await with_turns(stub, 2, agent_id="scripted")
    running = asyncio.ensure_future(run(stub, session, "wait"))
    await scripted_agent.started.wait()

    response = await compress(stub, session, keep_last=0)
    scripted_agent.release.set()
    await running
    history = await turns(stub, session)

    assert response.folded_turns == 2
    assert [(t.index, t.output) for t in history] == [(3, "first half, second half")]


async def test_a_compression_that_loses_the_race_is_aborted(
    request: pytest.FixtureRequest, store_url: str, summarizer: SummarizingAgent
) -> None:
    summarizer.release.clear()
    async with serving(request, store_url, agents={"smart": summarizer}) as (_, stub):
        session = await with_turns(stub, 3, agent_id="smart")
        first = asyncio.ensure_future(compress(stub, session, keep_last=1))
        second = asyncio.ensure_future(compress(stub, session, keep_last=1))
        await summarizer.asked.get()
        await summarizer.asked.get()
        summarizer.release.set()
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
        after = await get(stub, session)

    [won] = [o for o in outcomes if isinstance(o, pb.CompressSessionResponse)]
    [lost] = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert won.folded_turns == 2
    assert lost.code() == grpc.StatusCode.ABORTED
    assert error_info(lost).reason == "COMPRESSION_CONFLICT"
    assert after.folded_turns == 2


async def test_compaction_starts_past_max_history_turns_and_not_before(
    request: pytest.FixtureRequest, store_url: str
) -> None:
    async with serving(request, store_url, max_history_turns=4, keep_last_turns=2) as (
        server,
        stub,
    ):
        session = await with_turns(stub, 4)
        await server.managers[""].settle(5)
        at_the_threshold = await get(stub, session)
        await run(stub, session, "one more")
        await server.managers[""].settle(5)
        past_it = await get(stub, session)

    assert at_the_threshold.folded_turns == 0
    assert (past_it.folded_turns, past_it.total_turns) == (3, 5)
    assert "Turn 3: user: Question 3." in past_it.summary


async def test_compaction_starts_past_max_history_bytes(
    request: pytest.FixtureRequest, store_url: str
) -> None:
    async with serving(request, store_url, max_history_bytes=2_000) as (server, stub):
        session = await create(stub)
        for i in range(4):
            await run(stub, session, f"{i} " + "words " * 100)  # about 1.2 KB with the echo
            await server.managers[""].settle(5)
        after = await get(stub, session)

    assert after.folded_turns > 0
    assert after.history_bytes <= 2_000


async def test_the_agent_gets_the_summary_and_at_most_context_turns_turns(
    request: pytest.FixtureRequest, store_url: str, summarizer: SummarizingAgent
) -> None:
    async with serving(request, store_url, agents={"smart": summarizer}, context_turns=3) as (
        _,
        stub,
    ):
        session = await with_turns(stub, 6, agent_id="smart")
        await compress(stub, session, keep_last=4)
        await run(stub, session, "latest")

    context = summarizer.contexts[-1]
    assert [t.index for t in context.history] == [4, 5, 6]
    assert context.summary == "The user asked 2 questions about the weather."


async def test_archived_turns_list_with_include_archived(
    request: pytest.FixtureRequest, store_url: str
) -> None:
    async with serving(request, store_url, archive_folded_turns=True) as (_, stub):
        session = await with_turns(stub, 3)
        before = await turns(stub, session)
        await compress(stub, session, keep_last=1)

        hot = await turns(stub, session)
        everything = await stub.ListTurns(
            pb.ListTurnsRequest(
                session_id=session.session_id, user_id=session.user_id, include_archived=True
            )
        )

    assert [t.index for t in hot] == [3]
    assert list(everything.turns) == before


async def test_the_items_of_archived_turns_list_with_include_archived(
    request: pytest.FixtureRequest, store_url: str
) -> None:
    async with serving(request, store_url, archive_folded_turns=True) as (_, stub):
        session = await with_turns(stub, 3)
        listing = pb.ListItemsRequest(session_id=session.session_id, user_id=session.user_id)
        before = await stub.ListItems(listing)
        await compress(stub, session, keep_last=1)

        hot = await stub.ListItems(listing)
        listing.include_archived = True
        everything = await stub.ListItems(listing)
        listing.order_by, listing.page_size = "sequence desc", 3
        newest = await stub.ListItems(listing)

    assert [i.turn_index for i in hot.items] == [3, 3]
    assert list(everything.items) == list(before.items)
    assert [i.sequence for i in newest.items] == [6, 5, 4]


async def test_compaction_keeps_the_newest_turn_so_its_retry_still_replays(
    request: pytest.FixtureRequest, store_url: str
) -> None:
    async with serving(request, store_url, max_history_turns=2, keep_last_turns=0) as (
        server,
        stub,
    ):
        session = await with_turns(stub, 2)
        first = await run(stub, session, "Question 3.", request_id="req-3")
        await server.managers[""].settle(5)
        retried = await run(stub, session, "Question 3.", request_id="req-3")
        after = await get(stub, session)

    assert after.folded_turns == 2
    assert retried[0].started.replayed
    assert reply_of(retried) == reply_of(first)
