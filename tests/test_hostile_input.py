"""Hostile input to every RPC: every answer is a proper status code, never INTERNAL, never a crash.

The property (hypothesis): arbitrary strings, sizes, durations, field masks, page tokens,
labels and state, sent over the real server to each RPC of ``SessionService``,
are answered either OK or with a code a caller can act on (:data:`REFUSALS`), with a
message and, from the service, a ``google.rpc.ErrorInfo``; never INTERNAL, UNKNOWN,
UNAVAILABLE (the store is up) or DEADLINE_EXCEEDED (a hang: every call has a deadline).
A refused write stores nothing: a refused create or import leaves its id unknown (or the
session that already had it unchanged) and the user's listing as it was, and a refused
update, end, delete, run or read leaves the session it named exactly as it was, and a
refused append, replace, pop or clear of items leaves its items as they were too.

Reaching deep: a request with many arbitrary fields is refused at its first check and
never tests the others, so each example makes at most two fields hostile (any value at
all) and keeps the others valid (:func:`mixed`); with none hostile the request succeeds
and its answer is checked too. Requests name the example's own live session (created
for it, sometimes ended, at its max_turns or with turns), another user's view of it, or
arbitrary ids (:class:`Target`), so they reach the store and the agent.

Hypothesis with asyncio: pytest-asyncio (1.x) runs a coroutine test decorated with
``@given`` by wrapping hypothesis' inner test in its synchronizer, so each example is one
``run_until_complete`` on the session-scoped loop that the ``server`` and ``stub``
fixtures live on: no ``.example()``, no loop or thread of our own, and shrinking works.
The function-scoped fixtures are shared by all the examples of a test on purpose
(``HealthCheck.function_scoped_fixture``): each example makes its sessions under fresh
ids and deletes them when it ends.

Budget: every RPC gets ``SWEEP`` (120 examples) on the memory store, and ``SMALL_SWEEP``
(40, the same strategies) on Redis, where the same values also go through the Lua
scripts; ``derandomize=True`` draws the same examples on every run, and ``database=None``
keeps no example database (the ``.hypothesis`` cache that remains ignores itself in
git). The file takes 25-30 s.

After the sweeps: regression tests for what they found (fixed in validation.py,
api/convert.py and state_json.py), paging (forged page tokens) and the registration of the servicer
(a request that does not decode is INVALID_ARGUMENT, not grpc's UNKNOWN).
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import grpc
import pytest
from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from grpc import StatusCode
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from agent_sessions.api.status import DOMAIN
from agent_sessions.state_json import MAX_DEPTH
from tests.grpc_helpers import Stub, create, error_info, rpc_error, run, state_of

# The codes a caller can act on. RESOURCE_EXHAUSTED is gRPC's own answer to a message
# over --max-message-bytes; OUT_OF_RANGE is allowed by the issue though nothing sends it.
REFUSALS = frozenset(
    {
        StatusCode.INVALID_ARGUMENT,
        StatusCode.NOT_FOUND,
        StatusCode.ALREADY_EXISTS,
        StatusCode.FAILED_PRECONDITION,
        StatusCode.ABORTED,
        StatusCode.OUT_OF_RANGE,
        StatusCode.RESOURCE_EXHAUSTED,
    }
)
CALL_TIMEOUT = 10.0  # seconds: a hang shows as DEADLINE_EXCEEDED, which is not a refusal
MAX_INPUT_BYTES = 32 * 1024  # the server's default --max-input-bytes
MAX_STATE_BYTES = 64 * 1024  # and --max-state-bytes
MAX_TTL_MS = 30 * 86_400_000  # and --max-ttl

SWEEP = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
SMALL_SWEEP = settings(SWEEP, max_examples=40)
# For the regression sweeps below: finding a failure is the point, shrinking only costs time.
PINNED = settings(SMALL_SWEEP, phases=[Phase.generate], report_multiple_bugs=False)

Answer = TypeVar("Answer")
Case = TypeVar("Case")


# --- checking answers -------------------------------------------------------------------


def assert_proper_refusal(error: grpc.aio.AioRpcError) -> None:
    code = error.code()
    assert code in REFUSALS, f"{code.name}: {error.details()!r}"
    assert error.details(), f"{code.name} without a message"
    if code is not StatusCode.RESOURCE_EXHAUSTED:  # gRPC's own, without a detail
        info = error_info(error)
        assert info.domain == DOMAIN, info
        assert info.reason, info
        if code is StatusCode.INVALID_ARGUMENT:
            assert info.metadata["field"], info


def note(outcome: object) -> None:
    """Counts the outcomes of the call under test (pytest --hypothesis-show-statistics)."""
    if not isinstance(outcome, grpc.aio.AioRpcError):
        event("OK")
    elif outcome.code() is StatusCode.INVALID_ARGUMENT:
        event(f"INVALID_ARGUMENT {error_info(outcome).metadata['field'][:40]}")
    else:
        event(outcome.code().name)


async def answer(call: Awaitable[Answer]) -> Answer | grpc.aio.AioRpcError:
    """The response, or the error once checked to be a proper refusal."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        assert_proper_refusal(error)
        return error


async def run_answer(
    stub: Stub, request: pb.RunRequest
) -> list[pb.RunEvent] | grpc.aio.AioRpcError:
    try:
        return [item async for item in stub.Run(request, timeout=CALL_TIMEOUT)]
    except grpc.aio.AioRpcError as error:
        assert_proper_refusal(error)
        return error


async def get(stub: Stub, user_id: str, session_id: str) -> pb.Session | grpc.aio.AioRpcError:
    request = pb.GetSessionRequest(user_id=user_id, session_id=session_id)
    return await answer(stub.GetSession(request, timeout=CALL_TIMEOUT))


async def assert_absent(stub: Stub, user_id: str, session_id: str) -> None:
    found = await get(stub, user_id, session_id)
    assert isinstance(found, grpc.aio.AioRpcError), f"a refused request stored {found}"
    assert found.code() in (StatusCode.NOT_FOUND, StatusCode.INVALID_ARGUMENT)


async def assert_unchanged(stub: Stub, before: pb.Session) -> None:
    after = await get(stub, before.user_id, before.session_id)
    assert after == before, f"a refused request changed the session:\n{before}\n->\n{after}"


async def listed_ids(stub: Stub, user_id: str) -> set[str]:
    request = pb.ListSessionsRequest(user_id=user_id, page_size=1000)
    page = await answer(stub.ListSessions(request, timeout=CALL_TIMEOUT))
    assert isinstance(page, pb.ListSessionsResponse)
    return {session.session_id for session in page.sessions}


def expires_soon(session: pb.Session) -> bool:
    """Whether a session accepted with a tiny ttl or idle timeout may be gone already."""
    return session.expire_time.ToMilliseconds() < time.time() * 1000 + 60_000


async def assert_reads_as(stub: Stub, expected: pb.Session) -> None:
    if not expires_soon(expected):
        assert await get(stub, expected.user_id, expected.session_id) == expected


def valid_user(user_id: str) -> bool:
    return 0 < len(user_id) <= 128 and not any(c.isspace() or c in "{}" for c in user_id)


@dataclass
class Sessions:
    """The sessions an example made, deleted when it ends so that the next starts clean."""

    stub: Stub
    made: list[pb.Session] = field(default_factory=list)

    async def create(self, user_id: str, **fields: Any) -> pb.Session:
        request = pb.CreateSessionRequest(user_id=user_id, agent_id="echo", **fields)
        session: pb.Session = await self.stub.CreateSession(request, timeout=CALL_TIMEOUT)
        self.made.append(session)
        return session

    def keep(self, session: pb.Session) -> None:
        self.made.append(session)

    async def run(self, session: pb.Session, text: str, request_id: str = "") -> None:
        request = pb.RunRequest(
            user_id=session.user_id,
            session_id=session.session_id,
            input=text,
            request_id=request_id,
        )
        async for _ in self.stub.Run(request, timeout=CALL_TIMEOUT):
            pass

    async def read(self, session: pb.Session) -> pb.Session:
        read = await get(self.stub, session.user_id, session.session_id)
        assert isinstance(read, pb.Session)
        return read

    async def delete_all(self) -> None:
        for session in self.made:
            request = pb.DeleteSessionRequest(
                user_id=session.user_id, session_id=session.session_id
            )
            await answer(self.stub.DeleteSession(request, timeout=CALL_TIMEOUT))


async def with_sessions(stub: Stub, body: Callable[[Sessions], Coroutine[Any, Any, None]]) -> None:
    sessions = Sessions(stub)
    try:
        await body(sessions)
    finally:
        await sessions.delete_all()


# --- values: valid ones, and hostile ones (anything at all) -----------------------------

# Every code point but the surrogates: protobuf strings must be valid UTF-8.
CHARACTERS = st.characters(codec="utf-8")
# fmt: off
NASTY = (
    "", " ", " \t\r\n ", "\x00", "a\x00b", "\x1b[31mred", "\x7f", "\u200b", "\ufeff",
    "\u2028", "{", "}", "{u}", "a{b}c", ":", "a:b", "::", "*", "?", "\\", "/", "../..",
    "%s%n", '"', "'", "null", "NaN", "-1", "0", "é", "𝄞", "🙂", "日本語", "a b", "a\nb",
    "sessions:{u}:s:x", 'W/"1"',
)
# fmt: on


def repeated(unit: st.SearchStrategy[str], sizes: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    """A long string: a short unit repeated to a drawn number of characters."""
    return st.tuples(unit, sizes).map(lambda drawn: (drawn[0] * drawn[1])[: drawn[1]])


def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY),
        st.text(CHARACTERS, max_size=max_size),
        st.from_regex(r"[A-Za-z0-9._~-]{1,24}", fullmatch=True),
        # Around the 128-character id limit, and huge.
        repeated(st.sampled_from(["a", "é", "🙂", " "]), st.integers(120, 140)),
        repeated(st.text(CHARACTERS, min_size=1, max_size=3), st.integers(200, 20_000)),
    )


int32s = st.one_of(
    st.sampled_from([0, 1, -1, 2, 1000, 1001, 2**31 - 1, -(2**31)]),
    st.integers(-(2**31), 2**31 - 1),
)
user_ids = st.from_regex(r"[^\s{}]{1,40}", fullmatch=True, alphabet=CHARACTERS)
session_ids = st.from_regex(r"[A-Za-z0-9._~-]{1,128}", fullmatch=True)
# The default agent (echo) answers any valid agent id.
agent_ids = st.one_of(st.just("echo"), st.from_regex(r"[A-Za-z0-9._~:/@-]{1,32}", fullmatch=True))


def duration_of(seconds: int, nanos: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


# At least a minute, so that sessions outlive their example (hostile ones can be 1 ms).
valid_durations = st.integers(60_000, MAX_TTL_MS).map(
    lambda ms: duration_of(ms // 1000, ms % 1000 * 1_000_000)
)
# fmt: off
DURATION_EDGES = [
    (0, 0), (0, 1), (0, 999_999), (0, 1_000_000), (1, 0), (-1, 0), (0, -1), (1, -1), (-1, 1),
    (0, 1_000_000_000), (0, 2**31 - 1), (0, -(2**31)), (2_592_000, 0), (2_592_000, 1_000_000),
    (315_576_000_000, 0), (2**63 - 1, 999_999_999), (-(2**63), 0),
]
# fmt: on
durations = st.one_of(
    st.sampled_from(DURATION_EDGES),
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.integers(-10, 31 * 86_400), st.integers(-(10**9), 2 * 10**9)),
).map(lambda pair: duration_of(*pair))


def timestamp_of(seconds: int, nanos: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


# Timestamp's range: 0001-01-01 to 9999-12-31.
valid_timestamps = st.integers(-62_135_596_800_000, 253_402_300_799_999).map(
    lambda ms: timestamp_of(ms // 1000, ms % 1000 * 1_000_000)
)
timestamps = st.one_of(
    st.sampled_from([(0, -1), (0, 10**9), (-62_135_596_801, 0), (253_402_300_800, 0)]),
    st.tuples(st.integers(-(2**63), 2**63 - 1), st.integers(-(2**31), 2**31 - 1)),
).map(lambda pair: timestamp_of(*pair))


def json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(texts(20), children, max_size=4)
        ),
        max_leaves=20,
    )


finite_json = json_values(
    st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=False, allow_infinity=False),
        # Any size: state_json keeps integers exactly, past what a double holds too.
        st.integers(),
        st.sampled_from([2**53 + 1, -(2**63) - 1, 2**64]),
        st.text(CHARACTERS, max_size=20),
    )
)
any_json = json_values(st.one_of(st.none(), st.booleans(), st.floats(), texts(20)))


def state_text(values: Any) -> str:
    """State as a client sends it: JSON text, with NaN and Infinity written as Python does."""
    return json.dumps(values, ensure_ascii=False)


def sent_state(text: str) -> dict[str, Any]:
    """The state that accepted ``text`` stands for (blank text is the empty state), as
    stored: without its "temp:" keys, which are never stored."""
    state: dict[str, Any] = json.loads(text) if text.strip() else {}
    return {key: value for key, value in state.items() if not key.startswith("temp:")}


def nested_objects(depth: int) -> dict[str, Any]:
    """A state ``depth`` objects deep (the state itself is 1), the innermost empty."""
    state: dict[str, Any] = {}
    for _ in range(depth - 1):
        state = {"v": state}
    return state


def nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


valid_states = st.one_of(
    st.just(""),
    st.dictionaries(st.text(CHARACTERS, max_size=10), finite_json, max_size=4).map(state_text),
)
# Texts at the edges of JSON objects: most are refused, a few (duplicate keys, blank) not.
# fmt: off
EDGE_STATES = [
    "[]", "[1]", "1", "-0", "null", "true", '"text"', "{", "}", "{}}", "{'a': 1}", '{"a": 1,}',
    '{"a": 1}{"b": 2}', '{"a": 1} x', '{"a": 01}', '{"a": .5}', '{"a": 1e999}',
    '{"a": -1e999}', '{"a": NaN}', '{"a": nan}', '{"a": Infinity}', '{"a": "\\x"}',
    '{"a": "\\u0000"}', '{"a": "\x00"}', '{"a": 1, "a": 2}', "\ufeff{}", " \u2028 ",
    '{"n": ' + "9" * 5_000 + "}",  # past Python's 4,300 digits of int() from text
]
# fmt: on
states = st.one_of(
    st.sampled_from(EDGE_STATES),
    texts(),
    st.dictionaries(texts(20), any_json, max_size=6).map(state_text),
    any_json.map(state_text),  # mostly not an object
    st.sampled_from([math.nan, math.inf, -math.inf]).map(
        lambda x: state_text({"a": [1, {"b": x}]})
    ),
    # Around the size limit: one big string, or thousands of keys (Redis gets them in chunks).
    st.integers(MAX_STATE_BYTES - 16, MAX_STATE_BYTES + 16).map(
        lambda n: state_text({"k": "x" * (n - len('{"k":""}'))})
    ),
    st.integers(0, 8_000).map(lambda n: state_text({f"k{i}": True for i in range(n)})),
    # Deep: around the limit, and far past what a recursive parser follows.
    st.integers(1, MAX_DEPTH + 8).map(lambda depth: state_text(nested_objects(depth))),
    st.integers(1, 45).map(lambda depth: state_text({"v": nested_lists(depth)})),
    st.integers(900, 100_000).map(lambda depth: '{"v":' + "[" * depth + "]" * depth + "}"),
)

valid_labels = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_.-]{0,62}", fullmatch=True),
    st.text(CHARACTERS, max_size=256),
    max_size=5,
)
labels = st.one_of(
    st.dictionaries(
        st.one_of(st.from_regex(r"[a-z][a-z0-9_.-]{0,63}", fullmatch=True), texts(70)),
        texts(300),
        max_size=5,
    ),
    # Around the 64-label and 256-character limits.
    st.integers(60, 70).map(lambda n: {f"k{i}": "v" for i in range(n)}),
    st.integers(250, 260).map(lambda n: {"long": "é" * n}),
)

UPDATABLE = ("state_json", "labels", "ttl", "idle_timeout", "max_turns")
valid_masks = st.sets(st.sampled_from(UPDATABLE), min_size=1).map(
    lambda paths: field_mask_pb2.FieldMask(paths=sorted(paths))
)
# fmt: off
MASK_PATHS = [
    *UPDATABLE, "", "*", "state", "state_json.city", "session.state_json", "etag", "user_id",
    "summary", "STATE_JSON", " labels", "labels,ttl",
]
# fmt: on
masks = st.lists(st.one_of(st.sampled_from(MASK_PATHS), texts()), max_size=6).map(
    lambda paths: field_mask_pb2.FieldMask(paths=paths)
)

valid_inputs = st.one_of(
    st.sampled_from(["How's the weather in Shanghai?", "What about Beijing?"]),
    st.text(CHARACTERS, min_size=1, max_size=50).filter(lambda text: bool(text.strip())),
)
inputs = st.one_of(
    texts(),
    # Around --max-input-bytes, in one-, two- and four-byte characters.
    st.integers(MAX_INPUT_BYTES - 2, MAX_INPUT_BYTES + 2).map(lambda n: "x" * n),
    st.integers(MAX_INPUT_BYTES // 2 - 1, MAX_INPUT_BYTES // 2 + 1).map(lambda n: "é" * n),
    st.integers(MAX_INPUT_BYTES // 4 - 1, MAX_INPUT_BYTES // 4 + 1).map(lambda n: "🙂" * n),
    repeated(st.text(CHARACTERS, min_size=1, max_size=2), st.integers(30_000, 70_000)),
)
valid_page_sizes = st.sampled_from([0, 1, 2, 1000])


@dataclass(frozen=True)
class Target:
    """The session a request names: the example's own, or other ids where given."""

    user_id: str | None = None
    session_id: str | None = None

    def ids(self, own: pb.Session) -> tuple[str, str]:
        user_id = own.user_id if self.user_id is None else self.user_id
        session_id = own.session_id if self.session_id is None else self.session_id
        return user_id, session_id


OWN = Target()
targets = st.one_of(
    st.builds(Target, user_id=user_ids),  # another user's view: NOT_FOUND, no leak
    st.builds(Target, user_id=texts()),
    st.builds(Target, session_id=st.one_of(session_ids, texts())),
    st.builds(Target, user_id=texts(), session_id=texts()),
)


@dataclass(frozen=True)
class Token:
    """A page token: the real next page's (``text`` None), maybe cut short, or any text."""

    text: str | None = None
    cut: int | None = None

    def resolve(self, real: str) -> str:
        if self.text is not None:
            return self.text
        return real if self.cut is None else real[: self.cut]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def json_b64(value: Any) -> str:
    return b64(json.dumps(value).encode())


valid_tokens = st.sampled_from([Token(text=""), Token()])
tokens = st.one_of(
    st.builds(Token, cut=st.integers(-30, 300)),
    st.builds(Token, text=texts()),
    st.builds(Token, text=st.binary(max_size=80).map(b64)),
    st.builds(Token, text=any_json.map(json_b64)),
    # Shaped like this service's tokens, of another query.
    st.builds(Token, text=st.fixed_dictionaries({"q": any_json, "p": any_json}).map(json_b64)),
)
orders = st.sampled_from(["", "index", "index desc", "Index  DESC", "index asc"])


def mixed(
    build: Callable[..., Case],
    max_hostile: int = 2,
    min_hostile: int = 0,
    weights: dict[str, int] | None = None,
    **fields: tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]] | st.SearchStrategy[Any],
) -> st.SearchStrategy[Case]:
    """``build(**fields)`` with up to ``max_hostile`` fields drawn hostile, the rest valid.

    A field is a pair of strategies, (valid, hostile), or one strategy always drawn
    (the session an example sets up). ``weights`` makes some fields hostile more often.
    """
    pairs = {name: pair for name, pair in fields.items() if isinstance(pair, tuple)}
    choices = [name for name in sorted(pairs) for _ in range((weights or {}).get(name, 1))]
    counts = [min(count, len(pairs)) for count in (0, 1, 1, 1, 2) if count <= max_hostile]

    @st.composite
    def cases(draw: st.DrawFn) -> Case:
        # Mostly one hostile field, so that it meets its own check; shrinks to none.
        count = draw(st.sampled_from([c for c in counts if c >= min_hostile]))
        hostile = draw(st.sets(st.sampled_from(choices), min_size=count, max_size=count))
        values = {}
        for name, strategies in fields.items():
            if isinstance(strategies, tuple):
                valid, anything = strategies
                values[name] = draw(anything if name in hostile else valid)
            else:
                values[name] = draw(strategies)
        return build(**values)

    return cases()


def either(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def set_optional(message: Any, name: str, value: Any) -> None:
    if value is not None:
        getattr(message, name).CopyFrom(value)


def enum(value: int) -> Any:
    """An int as a protobuf enum field's value (proto3 enums are open: any int32 goes)."""
    return cast(Any, value)


def imported_turn(position: int, hostile: bool) -> st.SearchStrategy[pb.Turn]:
    def build(**fields: Any) -> pb.Turn:
        created, completed, usage = (
            fields.pop("create_time"),
            fields.pop("complete_time"),
            fields.pop("usage"),
        )
        turn = pb.Turn(**fields)
        set_optional(turn, "create_time", created)
        set_optional(turn, "complete_time", completed)
        if usage is not None:
            turn.usage.input_tokens, turn.usage.output_tokens = usage
        return turn

    return mixed(
        build,
        max_hostile=1 if hostile else 0,
        min_hostile=1 if hostile else 0,
        index=(st.just(position + 1), int32s),
        status=(either(2, 3, 4).map(enum), int32s.map(enum)),
        input=(valid_inputs, inputs),
        output=(st.just(""), texts()),
        request_id=(either("", f"rq-{position}"), st.one_of(st.just("rq-0"), texts())),
        error=(st.just(""), texts()),
        create_time=(optional(valid_timestamps), timestamps),
        complete_time=(optional(valid_timestamps), timestamps),
        usage=(st.none(), st.tuples(int32s, int32s)),
    )


@st.composite
def imported_turns(draw: st.DrawFn, hostile: bool) -> list[pb.Turn]:
    if hostile and draw(st.integers(0, 5)) == 0:  # the 10,000-turn limit
        return [
            pb.Turn(index=i + 1, status=pb.TURN_STATUS_COMPLETED, input="x")
            for i in range(draw(either(10_000, 10_001)))
        ]
    count = draw(st.integers(1 if hostile else 0, 4))
    bad = draw(st.integers(0, count - 1)) if hostile else -1
    return [draw(imported_turn(position, position == bad)) for position in range(count)]


# --- the sweeps: one property per RPC, on both stores -----------------------------------


def sweeps(
    check: Callable[[Stub, Case], Coroutine[Any, Any, None]], cases: st.SearchStrategy[Case]
) -> tuple[Any, Any]:
    """The property ``check`` as two tests: ``SWEEP`` on memory, ``SMALL_SWEEP`` on Redis."""

    @pytest.mark.parametrize("store_kind", ["memory"])
    @SWEEP
    @given(case=cases)
    async def on_memory(stub: Stub, case: Case) -> None:
        await check(stub, case)

    @pytest.mark.parametrize("store_kind", ["redis"])
    @SMALL_SWEEP
    @given(case=cases)
    async def on_redis(stub: Stub, case: Case) -> None:
        await check(stub, case)

    return on_memory, on_redis


@dataclass(frozen=True)
class CreateCase:
    user_id: str
    agent_id: str
    session_id: str | None  # None: the id of an existing session
    ttl: duration_pb2.Duration | None
    idle_timeout: duration_pb2.Duration | None
    max_turns: int | None
    state_json: str
    labels: dict[str, str]


create_cases = mixed(
    CreateCase,
    user_id=(user_ids, texts()),
    agent_id=(agent_ids, texts()),
    session_id=(st.one_of(st.just(""), session_ids), st.one_of(st.none(), texts())),
    ttl=(optional(valid_durations), durations),
    idle_timeout=(optional(valid_durations), durations),
    max_turns=(optional(st.integers(0, 1000)), int32s),
    state_json=(valid_states, states),
    labels=(valid_labels, labels),
)


async def check_create(stub: Stub, case: CreateCase) -> None:
    async def body(sessions: Sessions) -> None:
        existing = None
        session_id = case.session_id
        if session_id is None:
            existing = await sessions.create(case.user_id if valid_user(case.user_id) else "u")
            session_id = existing.session_id
        request = pb.CreateSessionRequest(
            user_id=case.user_id,
            agent_id=case.agent_id,
            session_id=session_id,
            labels=case.labels,
            state_json=case.state_json,
        )
        set_optional(request, "ttl", case.ttl)
        set_optional(request, "idle_timeout", case.idle_timeout)
        if case.max_turns is not None:
            request.max_turns = case.max_turns
        listed = await listed_ids(stub, case.user_id) if valid_user(case.user_id) else set()

        created = await answer(stub.CreateSession(request, timeout=CALL_TIMEOUT))
        note(created)

        if isinstance(created, pb.Session):
            sessions.keep(created)
            assert created.user_id == case.user_id
            assert created.session_id == session_id or not session_id
            assert created.status == pb.SESSION_STATUS_ACTIVE
            assert dict(created.labels) == case.labels
            assert state_of(created) == sent_state(case.state_json)
            await assert_reads_as(stub, created)
            return
        if existing is not None and existing.user_id == case.user_id:
            await assert_unchanged(stub, existing)
        elif session_id and valid_user(case.user_id):
            await assert_absent(stub, case.user_id, session_id)
        if valid_user(case.user_id):
            assert await listed_ids(stub, case.user_id) == listed

    await with_sessions(stub, body)


test_create_session, test_create_session_on_redis = sweeps(check_create, create_cases)


@dataclass(frozen=True)
class ImportCase:
    session_id: str | None  # None: the id of an existing session
    user_id: str
    agent_id: str
    ttl: duration_pb2.Duration | None
    idle_timeout: duration_pb2.Duration | None
    max_turns: int
    state_json: str
    labels: dict[str, str]
    summary: str
    status: int
    folded_turns: int
    turn_count: int
    turns: list[pb.Turn]


import_cases = mixed(
    ImportCase,
    weights={"turns": 4},  # a history has many fields of its own
    session_id=(session_ids, st.one_of(st.none(), texts())),
    user_id=(user_ids, texts()),
    agent_id=(agent_ids, texts()),
    ttl=(optional(valid_durations), durations),
    idle_timeout=(optional(valid_durations), durations),
    max_turns=(st.integers(0, 1000), int32s),
    state_json=(valid_states, states),
    labels=(valid_labels, labels),
    summary=(st.text(CHARACTERS, max_size=100), texts()),
    status=(either(0, 1, 2), int32s),
    # The valid turns are numbered from 1: a history that follows no folded turns.
    folded_turns=(st.just(0), int32s),
    turn_count=(st.integers(0, 10), int32s),
    turns=(imported_turns(hostile=False), imported_turns(hostile=True)),
)


async def check_import(stub: Stub, case: ImportCase) -> None:
    async def body(sessions: Sessions) -> None:
        existing = None
        session_id = case.session_id
        if session_id is None:
            existing = await sessions.create(case.user_id if valid_user(case.user_id) else "u")
            session_id = existing.session_id
        snapshot = pb.SessionSnapshot(
            session_id=session_id,
            user_id=case.user_id,
            agent_id=case.agent_id,
            max_turns=case.max_turns,
            state_json=case.state_json,
            labels=case.labels,
            summary=case.summary,
            status=enum(case.status),
            folded_turns=case.folded_turns,
            turn_count=case.turn_count,
            turns=case.turns,
        )
        set_optional(snapshot, "ttl", case.ttl)
        set_optional(snapshot, "idle_timeout", case.idle_timeout)
        request = pb.ImportSessionRequest(snapshot=snapshot)

        imported = await answer(stub.ImportSession(request, timeout=CALL_TIMEOUT))
        note(imported)

        if isinstance(imported, pb.Session):
            sessions.keep(imported)
            assert (imported.user_id, imported.session_id) == (case.user_id, session_id)
            assert imported.total_turns == case.folded_turns + len(case.turns)
            assert imported.folded_turns == case.folded_turns
            assert imported.summary == case.summary
            assert state_of(imported) == sent_state(case.state_json)
            if expires_soon(imported):
                return
            history = pb.ListTurnsRequest(
                user_id=case.user_id, session_id=session_id, page_size=1000
            )
            listed = await answer(stub.ListTurns(history, timeout=CALL_TIMEOUT))
            assert isinstance(listed, pb.ListTurnsResponse)
            assert [t.input for t in listed.turns] == [t.input for t in case.turns[:1000]]
            return
        if existing is not None and existing.user_id == case.user_id:
            await assert_unchanged(stub, existing)
        elif valid_user(case.user_id):
            await assert_absent(stub, case.user_id, session_id)

    await with_sessions(stub, body)


test_import_session, test_import_session_on_redis = sweeps(check_import, import_cases)


# The RPCs on one session. Each example makes its own session for a valid user (maybe
# ended, at its max_turns, or with turns, the first under request id "rq-seen") and names
# it, another user's view of it, or arbitrary ids.


@dataclass(frozen=True)
class Setup:
    user_id: str
    turns: int
    ended: bool
    max_turns: int


setups = st.builds(
    Setup,
    user_id=user_ids,
    turns=st.integers(0, 3),
    ended=st.booleans(),
    max_turns=either(0, 0, 1, 2),
)


async def own_session(sessions: Sessions, setup: Setup) -> pb.Session:
    session = await sessions.create(setup.user_id, max_turns=setup.max_turns)
    turns = min(setup.turns, setup.max_turns) if setup.max_turns else setup.turns
    for index in range(turns):
        await sessions.run(session, f"turn {index + 1}", request_id="" if index else "rq-seen")
    if setup.ended:
        request = pb.EndSessionRequest(user_id=session.user_id, session_id=session.session_id)
        await sessions.stub.EndSession(request, timeout=CALL_TIMEOUT)
    return await sessions.read(session)


@dataclass(frozen=True)
class SessionCase:
    setup: Setup
    target: Target


session_cases = mixed(SessionCase, setup=setups, target=(st.just(OWN), targets))


async def check_get(stub: Stub, case: SessionCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await own_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own)

        read = await get(stub, user_id, session_id)
        note(read)

        if isinstance(read, pb.Session):
            assert (user_id, session_id) == (own.user_id, own.session_id)
            assert read == own

    await with_sessions(stub, body)


test_get_session, test_get_session_on_redis = sweeps(check_get, session_cases)


async def check_end(stub: Stub, case: SessionCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await own_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own)
        request = pb.EndSessionRequest(user_id=user_id, session_id=session_id)

        ended = await answer(stub.EndSession(request, timeout=CALL_TIMEOUT))
        note(ended)

        if isinstance(ended, pb.Session):
            assert (user_id, session_id) == (own.user_id, own.session_id)
            assert ended.status == pb.SESSION_STATUS_ENDED
            assert await sessions.read(own) == ended
        else:
            await assert_unchanged(stub, own)

    await with_sessions(stub, body)


test_end_session, test_end_session_on_redis = sweeps(check_end, session_cases)


async def check_delete(stub: Stub, case: SessionCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await own_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own)
        request = pb.DeleteSessionRequest(user_id=user_id, session_id=session_id)

        deleted = await answer(stub.DeleteSession(request, timeout=CALL_TIMEOUT))
        note(deleted)

        if isinstance(deleted, pb.DeleteSessionResponse):
            assert (user_id, session_id) == (own.user_id, own.session_id)
            await assert_absent(stub, user_id, session_id)
        else:
            await assert_unchanged(stub, own)

    await with_sessions(stub, body)


test_delete_session, test_delete_session_on_redis = sweeps(check_delete, session_cases)


@dataclass(frozen=True)
class CompressCase:
    setup: Setup
    target: Target
    keep_last: int | None  # None: unset, the server's default


compress_cases = mixed(
    CompressCase,
    setup=setups,
    target=(st.just(OWN), targets),
    keep_last=(st.one_of(st.none(), st.integers(0, 4)), st.one_of(st.none(), int32s)),
)


async def check_compress(stub: Stub, case: CompressCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await own_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own)
        request = pb.CompressSessionRequest(user_id=user_id, session_id=session_id)
        if case.keep_last is not None:
            request.keep_last = case.keep_last

        compressed = await answer(stub.CompressSession(request, timeout=CALL_TIMEOUT))
        note(compressed)

        if isinstance(compressed, pb.CompressSessionResponse):
            assert (user_id, session_id) == (own.user_id, own.session_id)
            after = compressed.session
            assert after.folded_turns == own.folded_turns + compressed.folded_turns
            assert (after.turn_count, after.total_turns) == (own.turn_count, own.total_turns)
            assert await sessions.read(own) == after
        else:
            await assert_unchanged(stub, own)

    await with_sessions(stub, body)


test_compress_session, test_compress_session_on_redis = sweeps(check_compress, compress_cases)


@dataclass(frozen=True)
class UpdateCase:
    setup: Setup
    target: Target
    etag: str | None  # None: the session's current etag
    mask: field_mask_pb2.FieldMask
    ttl: duration_pb2.Duration | None
    idle_timeout: duration_pb2.Duration | None
    max_turns: int
    state_json: str
    labels: dict[str, str]


update_cases = mixed(
    UpdateCase,
    setup=setups,
    target=(st.just(OWN), targets),
    etag=(either(None, ""), st.one_of(st.just('W/"1"'), texts())),
    mask=(valid_masks, masks),
    ttl=(valid_durations, optional(durations)),
    idle_timeout=(valid_durations, optional(durations)),
    max_turns=(st.integers(0, 1000), int32s),
    state_json=(valid_states, states),
    labels=(valid_labels, labels),
)


async def check_update(stub: Stub, case: UpdateCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await own_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own)
        source = pb.Session(
            user_id=user_id,
            session_id=session_id,
            etag=own.etag if case.etag is None else case.etag,
            max_turns=case.max_turns,
            labels=case.labels,
            state_json=case.state_json,
        )
        set_optional(source, "ttl", case.ttl)
        set_optional(source, "idle_timeout", case.idle_timeout)
        request = pb.UpdateSessionRequest(session=source, update_mask=case.mask)

        updated = await answer(stub.UpdateSession(request, timeout=CALL_TIMEOUT))
        note(updated)

        if isinstance(updated, pb.Session):
            assert (user_id, session_id) == (own.user_id, own.session_id)
            assert updated.etag != own.etag
            if "labels" in case.mask.paths:
                assert dict(updated.labels) == case.labels
            if "max_turns" in case.mask.paths:
                assert updated.max_turns == case.max_turns
            if "state_json" in case.mask.paths:
                assert state_of(updated) == sent_state(case.state_json)
            await assert_reads_as(stub, updated)
        else:
            await assert_unchanged(stub, own)

    await with_sessions(stub, body)


test_update_session, test_update_session_on_redis = sweeps(check_update, update_cases)


@dataclass(frozen=True)
class RunCase:
    setup: Setup
    target: Target
    input: str
    request_id: str


run_cases = mixed(
    RunCase,
    setup=setups,
    target=(st.just(OWN), targets),
    input=(valid_inputs, inputs),
    request_id=(st.one_of(either("", "rq-seen"), session_ids), texts()),
)


async def check_run(stub: Stub, case: RunCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await own_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own)
        request = pb.RunRequest(
            user_id=user_id, session_id=session_id, input=case.input, request_id=case.request_id
        )

        events = await run_answer(stub, request)
        note(events)

        if isinstance(events, grpc.aio.AioRpcError):
            await assert_unchanged(stub, own)
            return
        assert (user_id, session_id) == (own.user_id, own.session_id)
        kinds = [item.WhichOneof("event") for item in events]
        assert kinds[0] == "started" and kinds[-1] == "completed", kinds
        assert set(kinds[1:-1]) <= {"delta"}, kinds
        completed = events[-1].completed
        assert "".join(item.delta.text for item in events[1:-1]) == completed.turn.output
        assert completed.turn.status == pb.TURN_STATUS_COMPLETED
        if events[0].started.replayed:
            assert completed.turn.request_id == case.request_id == "rq-seen"
        else:
            assert completed.turn.input == case.input
            assert completed.session.total_turns == own.total_turns + 1
        assert await sessions.read(own) == completed.session

    await with_sessions(stub, body)


test_run, test_run_on_redis = sweeps(check_run, run_cases)


@dataclass(frozen=True)
class ListTurnsCase:
    setup: Setup
    target: Target
    page_size: int
    token: Token
    order_by: str


list_turns_cases = mixed(
    ListTurnsCase,
    setup=setups,
    target=(st.just(OWN), targets),
    page_size=(valid_page_sizes, int32s),
    token=(valid_tokens, tokens),
    order_by=(orders, st.one_of(st.sampled_from(["create_time", "-index", "index,"]), texts())),
)


async def check_list_turns(stub: Stub, case: ListTurnsCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await own_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own)
        # A real token: the one after a first page of one turn, in the order asked for
        # (when that order is valid; otherwise the token stays empty).
        first_page = pb.ListTurnsRequest(
            user_id=own.user_id, session_id=own.session_id, page_size=1, order_by=case.order_by
        )
        first = await answer(stub.ListTurns(first_page, timeout=CALL_TIMEOUT))
        real = first.next_page_token if isinstance(first, pb.ListTurnsResponse) else ""
        request = pb.ListTurnsRequest(
            user_id=user_id,
            session_id=session_id,
            page_size=case.page_size,
            page_token=case.token.resolve(real),
            order_by=case.order_by,
        )

        listed = await answer(stub.ListTurns(request, timeout=CALL_TIMEOUT))
        note(listed)

        if isinstance(listed, pb.ListTurnsResponse):
            assert (user_id, session_id) == (own.user_id, own.session_id)
            assert len(listed.turns) <= (case.page_size or 100)
            assert {t.index for t in listed.turns} <= set(range(1, own.total_turns + 1))
        await assert_unchanged(stub, own)

    await with_sessions(stub, body)


test_list_turns, test_list_turns_on_redis = sweeps(check_list_turns, list_turns_cases)


@dataclass(frozen=True)
class ListSessionsCase:
    user_id: str | None  # None: the user who owns the example's sessions
    owned: int
    agent_id: str
    page_size: int
    token: Token


list_sessions_cases = mixed(
    ListSessionsCase,
    user_id=(st.none(), st.one_of(user_ids, texts())),
    owned=(st.integers(0, 3), st.integers(0, 3)),
    agent_id=(either("", "echo", "other"), texts()),
    page_size=(valid_page_sizes, int32s),
    token=(valid_tokens, tokens),
)


async def check_list_sessions(stub: Stub, case: ListSessionsCase) -> None:
    async def body(sessions: Sessions) -> None:
        owner = "lister"
        made = [await sessions.create(owner) for _ in range(case.owned)]
        first_page = pb.ListSessionsRequest(user_id=owner, agent_id=case.agent_id, page_size=1)
        first = await answer(stub.ListSessions(first_page, timeout=CALL_TIMEOUT))
        real = first.next_page_token if isinstance(first, pb.ListSessionsResponse) else ""
        request = pb.ListSessionsRequest(
            user_id=owner if case.user_id is None else case.user_id,
            agent_id=case.agent_id,
            page_size=case.page_size,
            page_token=case.token.resolve(real),
        )

        listed = await answer(stub.ListSessions(request, timeout=CALL_TIMEOUT))
        note(listed)

        if isinstance(listed, pb.ListSessionsResponse):
            assert len(listed.sessions) <= (case.page_size or 50)
            assert {s.user_id for s in listed.sessions} <= {request.user_id}
            if request.user_id == owner:
                assert {s.session_id for s in listed.sessions} <= {s.session_id for s in made}
        for session in made:
            await assert_unchanged(stub, session)

    await with_sessions(stub, body)


test_list_sessions, test_list_sessions_on_redis = sweeps(check_list_sessions, list_sessions_cases)


# --- items: the history an agent running elsewhere writes -------------------------------
# Each example makes its own session for a valid user (its agent external or served,
# maybe ended or at its max_turns) with a state and 0-3 appends of two items each: the
# first append under request id "rq-seen", the first item of append n with item_id
# "seen-n". Requests name it, another user's view of it, or arbitrary ids.

MAX_ITEM_BYTES = 256 * 1024  # the server's default --max-item-bytes
MAX_ITEMS = 100  # and --max-items-per-append
KNOWN_ITEM_TYPES = frozenset(range(1, 6))
int64s = st.one_of(
    st.sampled_from([0, 1, -1, 2, 3, 6, 2**53, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)
# Valid JSON, written oddly: a reader must get these bytes back.
# fmt: off
ODD_PAYLOADS = [
    '{"z": 1,   "a": [ 3 ,2,1 ],\n\t"m" :{}}', '{"city": "上海 ☀", "ls": "\u2028"}',
    '{"e": "\\u00e9\\n\\"\\\\\\/", "nul": "\\u0000"}', '{"big": 123456789012345678901234567890}',
    '{"f": 1.50, "e": 1E+2, "neg": -0.0, "huge": 1e400}', '{"a": 1, "a": 2}', "null", "-0",
    '"text"', "[]", '  {"pad": true}  \n', '{"q":9,"t":9,"ct":0,"p":"}"}',
]
# Not JSON (most), or JSON at an edge; test_a_message_whose_text_is_a_lone_surrogate_is_
# answered_properly has the lone surrogate escapes ("\ud800").
EDGE_PAYLOADS = [
    "", " ", "\t\r\n", "{", "}", "[1,]", "{'a': 1}", '{"a": 1,}', '{"a": 1}{"b": 2}',
    '{"a": 1} x', "NaN", "nan", "Infinity", "-Infinity", '{"a": NaN}', "[Infinity]", "1e999",
    '{"a": "\\x"}', '{"a": "\x00"}', "\ufeff{}", "01", ".5", "True", "None", "undefined",
    '{"n": ' + "9" * 5_000 + "}", "[" * 100_000 + "]" * 100_000,
]
# fmt: on
valid_payloads = st.one_of(
    finite_json.map(lambda value: json.dumps(value, ensure_ascii=False)),
    st.sampled_from(ODD_PAYLOADS),
)
payloads = st.one_of(
    st.sampled_from(EDGE_PAYLOADS),
    texts(),
    any_json.map(state_text),  # NaN and infinities among the values
    # Around --max-item-bytes, in one- and two-byte characters.
    st.integers(MAX_ITEM_BYTES - 4, MAX_ITEM_BYTES + 4).map(lambda n: '"' + "x" * (n - 2) + '"'),
    st.integers(MAX_ITEM_BYTES // 2 - 3, MAX_ITEM_BYTES // 2 + 1).map(
        lambda n: '"' + "é" * n + '"'
    ),
    # Deep: what a recursive parser follows, and past it.
    st.integers(1, 3_000).map(lambda depth: "[" * depth + "]" * depth),
)
valid_item_texts = st.one_of(st.just(""), st.text(CHARACTERS, max_size=20))


def item_of(**fields: Any) -> pb.Item:
    created = fields.pop("create_time")
    item = pb.Item(**fields)
    set_optional(item, "create_time", created)
    return item


def an_item(position: int, hostile: bool) -> st.SearchStrategy[pb.Item]:
    return mixed(
        item_of,
        max_hostile=1 if hostile else 0,
        min_hostile=1 if hostile else 0,
        weights={"payload_json": 4, "type": 2, "item_id": 2},
        type=(st.one_of(st.just(1), st.integers(1, 5)).map(enum), int32s.map(enum)),
        # Never empty when valid: ITEM_TYPE_OTHER needs one.
        type_name=(st.text(CHARACTERS, min_size=1, max_size=20), texts()),
        role=(
            st.one_of(either("user", "assistant", "system", "tool", ""), valid_item_texts),
            texts(),
        ),
        name=(valid_item_texts, texts()),
        call_id=(valid_item_texts, texts()),
        # Unique within a write when valid; seen-n is held when the session has append n.
        item_id=(
            either("", f"new-{position}", f"seen-{position}"),
            st.one_of(texts(), either("seen-0", "new-0")),
        ),
        payload_json=(valid_payloads, payloads),
        # Output-only: whatever is sent there is ignored.
        sequence=(st.just(0), int64s),
        turn_index=(st.just(0), int32s),
        create_time=(st.none(), timestamps),
    )


def plain_item(text: str, **fields: Any) -> pb.Item:
    return pb.Item(
        type=pb.ITEM_TYPE_MESSAGE, role="user", payload_json=json.dumps({"content": text}), **fields
    )


@st.composite
def item_lists(draw: st.DrawFn, hostile: bool, min_size: int = 1) -> list[pb.Item]:
    """1-4 items (0-3 with ``min_size`` 0), one of them hostile; or, hostile, none at all,
    more than the limit per write, or two with one id."""
    if hostile:
        shape = draw(st.integers(0, 6))
        if shape == 0:
            count = draw(either(0, MAX_ITEMS, MAX_ITEMS + 1))
            return [plain_item(f"m{n}") for n in range(count)]
        if shape == 1:
            twice = draw(either("dup", "seen-0", " ", "\x00"))
            return [plain_item("one", item_id=twice), plain_item("two", item_id=twice)]
    count = draw(st.integers(1, 4) if hostile else st.integers(min_size, 3 + min_size))
    bad = draw(st.integers(0, count - 1)) if hostile else -1
    return [draw(an_item(position, position == bad)) for position in range(count)]


@dataclass(frozen=True)
class ItemsSetup:
    user_id: str
    appends: int
    ended: bool
    max_turns: int
    external: bool


items_setups = st.builds(
    ItemsSetup,
    user_id=user_ids,
    appends=st.integers(0, 3),
    ended=either(False, False, True),
    max_turns=either(0, 0, 1, 2),
    external=st.booleans(),
)
OWN_STATE = '{"keep": 1, "drop": [2]}'


@dataclass(frozen=True)
class ItemsSession:
    """The example's session, its items, and those of its append under "rq-seen"."""

    session: pb.Session
    items: list[pb.Item]
    first_append: list[pb.Item]

    def replays(self, request_id: str) -> bool:
        return request_id == "rq-seen" and bool(self.first_append)

    @property
    def newest(self) -> int:
        return self.items[-1].sequence if self.items else 0


async def all_items(stub: Stub, session: pb.Session) -> list[pb.Item]:
    request = pb.ListItemsRequest(
        user_id=session.user_id, session_id=session.session_id, page_size=1000
    )
    listed = await answer(stub.ListItems(request, timeout=CALL_TIMEOUT))
    assert isinstance(listed, pb.ListItemsResponse)
    return list(listed.items)


async def items_session(sessions: Sessions, setup: ItemsSetup) -> ItemsSession:
    session = await sessions.create(
        setup.user_id,
        max_turns=setup.max_turns,
        external_agent=setup.external,
        state_json=OWN_STATE,
    )
    appends = min(setup.appends, setup.max_turns) if setup.max_turns else setup.appends
    first: list[pb.Item] = []
    for n in range(appends):
        request = pb.AppendItemsRequest(
            user_id=session.user_id,
            session_id=session.session_id,
            items=[plain_item(f"q{n}", item_id=f"seen-{n}"), plain_item(f"a{n}")],
            request_id="" if n else "rq-seen",
        )
        appended = await sessions.stub.AppendItems(request, timeout=CALL_TIMEOUT)
        first = first or list(appended.items)
    if setup.ended:
        request_end = pb.EndSessionRequest(user_id=session.user_id, session_id=session.session_id)
        await sessions.stub.EndSession(request_end, timeout=CALL_TIMEOUT)
    return ItemsSession(
        await sessions.read(session), await all_items(sessions.stub, session), first
    )


async def assert_items_unchanged(stub: Stub, own: ItemsSession) -> None:
    """A refused (or read-only) call left the session and its items exactly as they were."""
    await assert_unchanged(stub, own.session)
    assert await all_items(stub, own.session) == own.items


def assert_written(
    sent: list[pb.Item], stored: list[pb.Item], own: ItemsSession, held: list[pb.Item]
) -> list[pb.Item]:
    """Checks the answer of a write of ``sent`` as one new turn after ``own``, where the
    items ``held`` stay: an item whose id one of them has is answered with it, the others
    are numbered on. Returns the items the write added."""
    by_id = {item.item_id: item for item in held if item.item_id}
    added = []
    sequence = own.session.last_item_sequence
    assert len(stored) == len(sent)
    for request_item, item in zip(sent, stored, strict=True):
        if request_item.item_id in by_id:
            assert item == by_id[request_item.item_id]
            continue
        sequence += 1
        kind = request_item.type if request_item.type in KNOWN_ITEM_TYPES else pb.ITEM_TYPE_OTHER
        assert (item.sequence, item.turn_index, item.type) == (
            sequence,
            own.session.total_turns + 1,
            kind,
        )
        fields = ("payload_json", "type_name", "role", "name", "call_id", "item_id")
        assert [getattr(item, f) for f in fields] == [getattr(request_item, f) for f in fields]
        added.append(item)
    return added


@dataclass(frozen=True)
class Expected:
    """An expected_last_sequence: unset, the newest item's (``newest``), or ``value``."""

    value: int | None = None
    newest: bool = False

    def number(self, own: ItemsSession) -> int | None:
        return own.newest if self.newest else self.value


valid_expected = either(Expected(), Expected(newest=True))
expected_sequences = st.builds(Expected, value=int64s)


@dataclass(frozen=True)
class AppendCase:
    setup: ItemsSetup
    target: Target
    items: list[pb.Item]
    state_delta_json: str
    state_removals: list[str]
    expected: Expected
    etag: str | None  # None: the session's current etag
    request_id: str


append_cases = mixed(
    AppendCase,
    weights={"items": 4},  # items have many fields of their own
    setup=items_setups,
    target=(st.just(OWN), targets),
    items=(item_lists(hostile=False), item_lists(hostile=True)),
    state_delta_json=(valid_states, states),
    state_removals=(
        st.lists(either("drop", "keep", "absent"), max_size=3),
        st.lists(st.one_of(texts(), st.just("drop")), max_size=6),
    ),
    expected=(valid_expected, expected_sequences),
    etag=(either("", None), st.one_of(st.just('W/"1"'), texts())),
    request_id=(st.one_of(either("", "rq-seen"), session_ids), texts()),
)


async def check_append(stub: Stub, case: AppendCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await items_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own.session)
        request = pb.AppendItemsRequest(
            user_id=user_id,
            session_id=session_id,
            items=case.items,
            state_delta_json=case.state_delta_json,
            state_removals=case.state_removals,
            etag=own.session.etag if case.etag is None else case.etag,
            request_id=case.request_id,
        )
        expected = case.expected.number(own)
        if expected is not None:
            request.expected_last_sequence = expected

        appended = await answer(stub.AppendItems(request, timeout=CALL_TIMEOUT))
        note(appended)

        if isinstance(appended, grpc.aio.AioRpcError):
            await assert_items_unchanged(stub, own)
            return
        assert (user_id, session_id) == (own.session.user_id, own.session.session_id)
        if own.replays(case.request_id):
            assert list(appended.items) == own.first_append
            assert appended.session == own.session
            await assert_items_unchanged(stub, own)
            return
        added = assert_written(case.items, list(appended.items), own, own.items)
        after = appended.session
        assert (after.total_turns, after.last_item_sequence) == (
            own.session.total_turns + 1,
            own.session.last_item_sequence + len(added),
        )
        state = state_of(own.session)
        for key in case.state_removals:
            state.pop(key, None)
        state.update(sent_state(case.state_delta_json))
        assert state_of(after) == state
        assert await sessions.read(own.session) == after
        assert await all_items(stub, own.session) == own.items + added

    await with_sessions(stub, body)


test_append_items, test_append_items_on_redis = sweeps(check_append, append_cases)


@dataclass(frozen=True)
class ReplaceCase:
    setup: ItemsSetup
    target: Target
    after_sequence: int
    items: list[pb.Item]
    expected: Expected
    request_id: str


replace_cases = mixed(
    ReplaceCase,
    weights={"items": 3},
    setup=items_setups,
    target=(st.just(OWN), targets),
    after_sequence=(st.integers(0, 7), int64s),
    items=(item_lists(hostile=False, min_size=0), item_lists(hostile=True)),
    expected=(valid_expected, expected_sequences),
    request_id=(st.one_of(either("", "rq-seen"), session_ids), texts()),
)


async def check_replace(stub: Stub, case: ReplaceCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await items_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own.session)
        request = pb.ReplaceItemsRequest(
            user_id=user_id,
            session_id=session_id,
            after_sequence=case.after_sequence,
            items=case.items,
            request_id=case.request_id,
        )
        expected = case.expected.number(own)
        if expected is not None:
            request.expected_last_sequence = expected

        replaced = await answer(stub.ReplaceItems(request, timeout=CALL_TIMEOUT))
        note(replaced)

        if isinstance(replaced, grpc.aio.AioRpcError):
            await assert_items_unchanged(stub, own)
            return
        assert (user_id, session_id) == (own.session.user_id, own.session.session_id)
        if own.replays(case.request_id):
            assert list(replaced.items) == own.first_append
            assert replaced.session == own.session
            await assert_items_unchanged(stub, own)
            return
        kept = [item for item in own.items if item.sequence <= case.after_sequence]
        added = assert_written(case.items, list(replaced.items), own, kept)
        after = replaced.session
        assert (after.total_turns, after.last_item_sequence) == (
            own.session.total_turns + 1,
            own.session.last_item_sequence + len(added),
        )
        assert state_of(after) == state_of(own.session)
        assert await sessions.read(own.session) == after
        assert await all_items(stub, own.session) == kept + added

    await with_sessions(stub, body)


test_replace_items, test_replace_items_on_redis = sweeps(check_replace, replace_cases)


@dataclass(frozen=True)
class ListItemsCase:
    setup: ItemsSetup
    target: Target
    page_size: int
    token: Token
    order_by: str
    after_sequence: int


list_items_cases = mixed(
    ListItemsCase,
    setup=items_setups,
    target=(st.just(OWN), targets),
    page_size=(valid_page_sizes, int32s),
    token=(valid_tokens, tokens),
    order_by=(
        either("", "sequence", "sequence desc", "SEQUENCE  Desc", "sequence asc"),
        st.one_of(either("index", "index desc", "-sequence", "sequence,", "create_time"), texts()),
    ),
    after_sequence=(st.integers(0, 7), int64s),
)


def newest_first(order_by: str) -> bool:
    return " ".join(order_by.lower().split()) == "sequence desc"


async def check_list_items(stub: Stub, case: ListItemsCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await items_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own.session)
        # A real token: the one after a first page of one item, for the same query
        # (when it is valid; otherwise the token stays empty).
        first_page = pb.ListItemsRequest(
            user_id=own.session.user_id,
            session_id=own.session.session_id,
            page_size=1,
            order_by=case.order_by,
            after_sequence=case.after_sequence,
        )
        first = await answer(stub.ListItems(first_page, timeout=CALL_TIMEOUT))
        real = first.next_page_token if isinstance(first, pb.ListItemsResponse) else ""
        request = pb.ListItemsRequest(
            user_id=user_id,
            session_id=session_id,
            page_size=case.page_size,
            page_token=case.token.resolve(real),
            order_by=case.order_by,
            after_sequence=case.after_sequence,
        )

        listed = await answer(stub.ListItems(request, timeout=CALL_TIMEOUT))
        note(listed)

        if isinstance(listed, pb.ListItemsResponse):
            assert (user_id, session_id) == (own.session.user_id, own.session.session_id)
            got = list(listed.items)
            assert len(got) <= min(case.page_size or 100, 1000)
            matching = [item for item in own.items if item.sequence > case.after_sequence]
            if newest_first(case.order_by):
                matching.reverse()
            if request.page_token and request.page_token == real:
                assert isinstance(first, pb.ListItemsResponse)
                matching = matching[1:]
            assert got == matching[: len(got)]
            assert bool(listed.next_page_token) == (len(got) < len(matching))
        await assert_items_unchanged(stub, own)

    await with_sessions(stub, body)


test_list_items, test_list_items_on_redis = sweeps(check_list_items, list_items_cases)


@dataclass(frozen=True)
class ItemsSessionCase:
    setup: ItemsSetup
    target: Target


items_session_cases = mixed(ItemsSessionCase, setup=items_setups, target=(st.just(OWN), targets))


async def check_pop(stub: Stub, case: ItemsSessionCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await items_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own.session)
        request = pb.PopItemRequest(user_id=user_id, session_id=session_id)

        popped = await answer(stub.PopItem(request, timeout=CALL_TIMEOUT))
        note(popped)

        if isinstance(popped, grpc.aio.AioRpcError):
            await assert_items_unchanged(stub, own)
            return
        assert (user_id, session_id) == (own.session.user_id, own.session.session_id)
        if own.items:
            assert popped.item == own.items[-1]
        else:
            assert not popped.HasField("item")
        after = popped.session
        assert (after.total_turns, after.last_item_sequence) == (
            own.session.total_turns,
            own.session.last_item_sequence,
        )
        assert state_of(after) == state_of(own.session)
        assert await sessions.read(own.session) == after
        assert await all_items(stub, own.session) == own.items[:-1]

    await with_sessions(stub, body)


test_pop_item, test_pop_item_on_redis = sweeps(check_pop, items_session_cases)


async def check_clear(stub: Stub, case: ItemsSessionCase) -> None:
    async def body(sessions: Sessions) -> None:
        own = await items_session(sessions, case.setup)
        user_id, session_id = case.target.ids(own.session)
        request = pb.ClearItemsRequest(user_id=user_id, session_id=session_id)

        cleared = await answer(stub.ClearItems(request, timeout=CALL_TIMEOUT))
        note(cleared)

        if isinstance(cleared, grpc.aio.AioRpcError):
            await assert_items_unchanged(stub, own)
            return
        assert (user_id, session_id) == (own.session.user_id, own.session.session_id)
        after = cleared.session
        total = own.session.total_turns
        assert (after.total_turns, after.folded_turns, after.turn_count) == (
            total,
            total,
            own.session.turn_count,
        )
        assert (after.summary, after.last_item_sequence) == ("", own.session.last_item_sequence)
        assert state_of(after) == state_of(own.session)
        assert await sessions.read(own.session) == after
        assert await all_items(stub, own.session) == []
        history = pb.ListTurnsRequest(user_id=user_id, session_id=session_id)
        listed = await answer(stub.ListTurns(history, timeout=CALL_TIMEOUT))
        assert isinstance(listed, pb.ListTurnsResponse)
        assert list(listed.turns) == []

    await with_sessions(stub, body)


test_clear_items, test_clear_items_on_redis = sweeps(check_clear, items_session_cases)


# --- items: edges the sweeps reach rarely, and what they found -----------------------


async def an_external_session(stub: Stub) -> pb.Session:
    return await create(stub, user_id="u", external_agent=True)


async def append_one(stub: Stub, session: pb.Session, item: pb.Item) -> pb.AppendItemsResponse:
    request = pb.AppendItemsRequest(
        user_id=session.user_id, session_id=session.session_id, items=[item]
    )
    response: pb.AppendItemsResponse = await stub.AppendItems(request, timeout=CALL_TIMEOUT)
    return response


@pytest.mark.parametrize("store_kind", ["memory"])
@pytest.mark.parametrize(
    "payload", ["NaN", "-Infinity", '{"a": [1, {"b": NaN}]}', '{"a": Infinity}', "{nope", " "]
)
async def test_an_item_payload_must_be_json(stub: Stub, payload: str) -> None:
    session = await an_external_session(stub)

    error = await rpc_error(
        append_one(stub, session, pb.Item(type=pb.ITEM_TYPE_MESSAGE, payload_json=payload))
    )

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "items[0].payload_json"
    await assert_unchanged(stub, session)


@pytest.mark.parametrize("store_kind", ["memory"])
@pytest.mark.parametrize(("unit", "bytes_each"), [("x", 1), ("é", 2), ("🙂", 4)])
async def test_an_item_payload_may_be_as_long_as_the_limit_and_no_longer(
    stub: Stub, unit: str, bytes_each: int
) -> None:
    session = await an_external_session(stub)
    # A JSON string: two quotes around the characters.
    longest = '"' + unit * ((MAX_ITEM_BYTES - 2) // bytes_each) + '"'
    too_long = '"' + unit * ((MAX_ITEM_BYTES - 2) // bytes_each + 1) + '"'

    kept = await append_one(
        stub, session, pb.Item(type=pb.ITEM_TYPE_OTHER, type_name="blob", payload_json=longest)
    )
    error = await rpc_error(
        append_one(
            stub, session, pb.Item(type=pb.ITEM_TYPE_OTHER, type_name="blob", payload_json=too_long)
        )
    )

    assert kept.items[0].payload_json == longest
    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == "items[0].payload_json"
    assert await all_items(stub, session) == list(kept.items)


@pytest.mark.parametrize("store_kind", ["memory"])
@pytest.mark.parametrize("number", [6, 99, 2**31 - 1, -1, -(2**31)])
async def test_an_unknown_item_type_is_kept_as_other_and_needs_a_type_name(
    stub: Stub, number: int
) -> None:
    """An item type from a newer contract is kept as ITEM_TYPE_OTHER (api/convert.py)."""
    session = await an_external_session(stub)

    unnamed = await rpc_error(
        append_one(stub, session, pb.Item(type=enum(number), payload_json="{}"))
    )
    named = await append_one(
        stub, session, pb.Item(type=enum(number), type_name="newer", payload_json="{}")
    )

    assert error_info(unnamed).metadata["field"] == "items[0].type_name"
    assert (named.items[0].type, named.items[0].type_name) == (pb.ITEM_TYPE_OTHER, "newer")


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
@pytest.mark.parametrize(
    ("role", "payload"),
    [
        ("user", '{"role": "user", "content": "\\ud800"}'),
        ("assistant", '"\\udfff and more"'),
        ("tool", '{"text": "half an emoji: \\ud83d"}'),
    ],
)
async def test_a_message_whose_text_is_a_lone_surrogate_is_answered_properly(
    stub: Stub, role: str, payload: str
) -> None:
    """Valid JSON whose string escapes a lone surrogate: stored byte for byte (its text
    view made valid) or refused naming the item, never INTERNAL, never half-written."""
    session = await an_external_session(stub)
    item = pb.Item(type=pb.ITEM_TYPE_MESSAGE, role=role, payload_json=payload)

    written = await answer(append_one(stub, session, item))

    if isinstance(written, grpc.aio.AioRpcError):
        assert error_info(written).metadata["field"] == "items[0].payload_json"
        await assert_unchanged(stub, session)
        assert await all_items(stub, session) == []
        return
    assert written.items[0].payload_json == payload
    assert await all_items(stub, session) == list(written.items)
    listed = await stub.ListTurns(
        pb.ListTurnsRequest(user_id="u", session_id=session.session_id), timeout=CALL_TIMEOUT
    )
    assert [turn.index for turn in listed.turns] == [1]


# --- regressions: what the sweeps found, fixed in validation.py and api/convert.py -----


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_state_numbers_must_be_finite(stub: Stub, number: str) -> None:
    """Was INTERNAL (when state was a Struct): json_format refuses to turn NaN and
    infinities into JSON. As JSON text they are refused where they are, never stored;
    1e999 too, which Python would read as infinity."""
    state = '{"a": [1, {"b": ' + number + "}]}"
    create_request = pb.CreateSessionRequest(
        user_id="u", agent_id="echo", session_id="nan-create", state_json=state
    )
    import_request = pb.ImportSessionRequest(
        snapshot=pb.SessionSnapshot(
            user_id="u", agent_id="echo", session_id="nan-import", state_json=state
        )
    )
    session = await create(stub, user_id="u")
    update_request = pb.UpdateSessionRequest(
        session=pb.Session(user_id="u", session_id=session.session_id, state_json=state),
        update_mask=field_mask_pb2.FieldMask(paths=["state_json"]),
    )

    calls: list[tuple[Awaitable[Any], str]] = [
        (stub.CreateSession(create_request), 'state_json["a"][1]["b"]'),
        (stub.ImportSession(import_request), 'snapshot.state_json["a"][1]["b"]'),
        (stub.UpdateSession(update_request), 'session.state_json["a"][1]["b"]'),
    ]
    for call, field_name in calls:
        error = await rpc_error(call)
        assert error.code() == StatusCode.INVALID_ARGUMENT
        assert error_info(error).metadata["field"] == field_name

    await assert_absent(stub, "u", "nan-create")
    await assert_absent(stub, "u", "nan-import")
    await assert_unchanged(stub, session)


@pytest.mark.parametrize(
    ("stamp", "seconds", "nanos"),
    [
        ("create_time", 0, -1),
        ("create_time", 0, 1_000_000_000),
        ("complete_time", 253_402_300_800, 0),  # 10000-01-01
        ("complete_time", -62_135_596_801, 0),  # before 0001-01-01
    ],
)
async def test_imported_turn_times_must_be_valid_timestamps(
    stub: Stub, stamp: str, seconds: int, nanos: int
) -> None:
    """Was INTERNAL: Timestamp.ToMilliseconds raises ValueError outside Timestamp's rules."""
    turn = pb.Turn(index=1, status=pb.TURN_STATUS_COMPLETED, input="hi", output="hello")
    getattr(turn, stamp).CopyFrom(timestamp_of(seconds, nanos))
    snapshot = pb.SessionSnapshot(user_id="u", agent_id="echo", session_id="bad-time", turns=[turn])

    error = await rpc_error(stub.ImportSession(pb.ImportSessionRequest(snapshot=snapshot)))

    assert error.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(error).metadata["field"] == f"snapshot.turns[0].{stamp}"
    await assert_absent(stub, "u", "bad-time")


async def test_imported_turn_times_may_span_timestamps_whole_range(stub: Stub) -> None:
    turn = pb.Turn(
        index=1,
        status=pb.TURN_STATUS_COMPLETED,
        input="hi",
        create_time=timestamp_of(-62_135_596_800, 0),
        complete_time=timestamp_of(253_402_300_799, 999_999_999),
    )
    snapshot = pb.SessionSnapshot(
        user_id="u", agent_id="echo", session_id="old-times", turns=[turn]
    )

    await stub.ImportSession(pb.ImportSessionRequest(snapshot=snapshot))

    listed = await stub.ListTurns(pb.ListTurnsRequest(user_id="u", session_id="old-times"))
    assert listed.turns[0].create_time == turn.create_time
    assert listed.turns[0].complete_time == timestamp_of(253_402_300_799, 999_000_000)


async def test_state_depth_is_limited_and_the_deepest_state_is_carried_everywhere(
    stub: Stub,
) -> None:
    """Was INTERNAL on every Run when state was a Struct: a state 34 objects deep was
    accepted, then RunCompleted could not be built within protobuf's 100-message nesting
    limit, after the turn had been stored COMPLETED. JSON text has no such limit, but the
    depth limit stays, and a state nested past what a recursive parser follows (Python's
    json among them) is refused too, not a RecursionError."""
    deepest = state_text(nested_objects(MAX_DEPTH))
    session = await create(stub, user_id="u", state_json=deepest)

    events = await run(stub, session, "hi")

    assert json.loads(events[-1].completed.session.state_json) == json.loads(deepest)
    listed = await stub.ListSessions(pb.ListSessionsRequest(user_id="u"))
    assert json.loads(listed.sessions[0].state_json) == json.loads(deepest)

    too_deep = [
        state_text(nested_objects(MAX_DEPTH + 1)),
        state_text({"v": nested_lists(MAX_DEPTH)}),
        '{"v": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ]
    for state in too_deep:
        request = pb.CreateSessionRequest(user_id="u", agent_id="echo", state_json=state)
        error = await rpc_error(stub.CreateSession(request))
        assert error.code() == StatusCode.INVALID_ARGUMENT
        assert error_info(error).metadata["field"].startswith("state_json")
    update = pb.UpdateSessionRequest(
        session=pb.Session(user_id="u", session_id=session.session_id, state_json=too_deep[0]),
        update_mask=field_mask_pb2.FieldMask(paths=["state_json"]),
    )
    before = await stub.GetSession(pb.GetSessionRequest(user_id="u", session_id=session.session_id))
    assert (await rpc_error(stub.UpdateSession(update))).code() == StatusCode.INVALID_ARGUMENT
    await assert_unchanged(stub, before)
    assert await listed_ids(stub, "u") == {session.session_id}


# --- forged page tokens and requests that do not decode --------------------------------
# Both answered INTERNAL or UNKNOWN once; these sweeps keep them answered properly.


def forged_token(query: dict[str, Any], position: Any) -> str:
    """A token as paging.encode writes it, for the right query, at any position."""
    return json_b64({"q": query, "p": position})


@PINNED
@given(
    position=st.dictionaries(
        st.one_of(st.sampled_from(["i", "t", "s"]), texts(5)), any_json, max_size=3
    ),
    newest_first=st.booleans(),
)
async def test_forged_page_tokens_are_refused_properly(
    stub: Stub, position: dict[str, Any], newest_first: bool
) -> None:
    async def body(sessions: Sessions) -> None:
        session = await sessions.create("forger")
        for index in range(3):
            await sessions.run(session, f"turn {index + 1}")
        turns_query = {"session_id": session.session_id, "newest_first": newest_first}
        listed = await answer(
            stub.ListTurns(
                pb.ListTurnsRequest(
                    user_id="forger",
                    session_id=session.session_id,
                    order_by="index desc" if newest_first else "",
                    page_token=forged_token(turns_query, position),
                ),
                timeout=CALL_TIMEOUT,
            )
        )
        if isinstance(listed, pb.ListTurnsResponse):
            assert {t.index for t in listed.turns} <= {1, 2, 3}
        sessions_query = {"user_id": "forger", "agent_id": ""}
        await answer(
            stub.ListSessions(
                pb.ListSessionsRequest(
                    user_id="forger", page_token=forged_token(sessions_query, position)
                ),
                timeout=CALL_TIMEOUT,
            )
        )

    await with_sessions(stub, body)


SERVICE = pb.DESCRIPTOR.services_by_name["SessionService"].full_name
METHODS = [
    (method.name, method.server_streaming)
    for method in pb.DESCRIPTOR.services_by_name["SessionService"].methods
]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            return bytes([*out, low])
        out.append(low | 0x80)


def deep_state_create_request(depth: int) -> bytes:
    """A CreateSessionRequest whose state_json holds ``depth`` nested lists under a key,
    encoded by hand: no client library checks the text it sends."""
    state = ('{"v":' + "[" * depth + "]" * depth + "}").encode()
    head = pb.CreateSessionRequest(user_id="u", agent_id="echo").SerializeToString()
    return head + b"\x3a" + varint(len(state)) + state  # CreateSessionRequest.state_json = 7


@pytest.mark.parametrize("store_kind", ["memory"])
@PINNED
@given(
    method=st.sampled_from(METHODS),
    payload=st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"\xff\xff\xff", b"\x0a\x02\xc3\x28", b"\x0a\x05ab"]),
    ),
)
async def test_undecodable_requests_are_refused_properly(
    channel: grpc.aio.Channel, method: tuple[str, bool], payload: bytes
) -> None:
    name, streaming = method
    path = f"/{SERVICE}/{name}"
    try:  # no serializers: the payload goes out as it is
        if streaming:
            async for _ in channel.unary_stream(path, None, None)(payload, timeout=CALL_TIMEOUT):
                pass
        else:
            await channel.unary_unary(path, None, None)(payload, timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        assert error.code() in REFUSALS, f"{error.code().name}: {error.details()!r}"


@pytest.mark.parametrize("store_kind", ["memory"])
@pytest.mark.parametrize("depth", [MAX_DEPTH, 1_000, 200_000])
async def test_a_hand_encoded_create_with_state_nested_too_deep_is_invalid_argument(
    channel: grpc.aio.Channel, depth: int
) -> None:
    """With the state object, the lists nest ``depth + 1`` deep: past the limit, and for
    the deeper two past what a recursive parser follows."""
    create_session = channel.unary_unary(f"/{SERVICE}/CreateSession", None, None)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await create_session(deep_state_create_request(depth), timeout=CALL_TIMEOUT)

    assert raised.value.code() == StatusCode.INVALID_ARGUMENT
    assert error_info(raised.value).metadata["field"].startswith("state_json")
