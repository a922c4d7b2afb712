"""Sessions and turns as the service's logic and stores see them.

Times are integer milliseconds since the Unix epoch and durations integer
milliseconds: the unit Redis key expiry uses, so the stores and the expiry rule
do the same arithmetic.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

JsonValue: TypeAlias = Any
"""A value that JSON (and ``google.protobuf.Value``) can hold."""


class SessionStatus(enum.IntEnum):
    """Numbered as ``agentsessions.sessions.v1.SessionStatus``."""

    ACTIVE = 1
    ENDED = 2


class TurnStatus(enum.IntEnum):
    """Numbered as ``agentsessions.sessions.v1.TurnStatus``."""

    IN_PROGRESS = 1
    COMPLETED = 2
    FAILED = 3
    CANCELLED = 4


@dataclass(frozen=True, slots=True)
class RunningTurn:
    """The one turn a session may have in progress, and the run that owns it."""

    index: int
    run_id: str
    lease_until_ms: int


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    user_id: str
    agent_id: str
    status: SessionStatus
    create_time_ms: int
    update_time_ms: int
    last_activity_ms: int
    ttl_ms: int
    idle_timeout_ms: int
    max_turns: int
    turn_count: int
    total_turns: int
    state: dict[str, JsonValue] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    version: int = 1
    running: RunningTurn | None = None
    create_request_id: str = ""
    folded_turns: int = 0
    """The oldest turns, 1..folded_turns, folded into ``summary``: the history holds the rest."""
    history_bytes: int = 0
    """UTF-8 bytes of the inputs and outputs of the turns in the history (not folded ones)."""
    external_agent: bool = False
    """The agent runs outside the service: the history is written with append_items."""
    last_item_sequence: int = 0
    """The sequence number of the last item ever written (never reused)."""
    app: str = ""
    """The application the session belongs to ("" for the default): apps keep their
    sessions, user state and app state apart."""

    @property
    def expire_time_ms(self) -> int:
        return expire_time_ms(
            create_time_ms=self.create_time_ms,
            ttl_ms=self.ttl_ms,
            last_activity_ms=self.last_activity_ms,
            idle_timeout_ms=self.idle_timeout_ms,
        )

    @property
    def etag(self) -> str:
        return etag_of(self.version)


def expire_time_ms(
    *, create_time_ms: int, ttl_ms: int, last_activity_ms: int, idle_timeout_ms: int
) -> int:
    """A session lives until its TTL runs out or it idles too long, whichever comes first."""
    return min(create_time_ms + ttl_ms, last_activity_ms + idle_timeout_ms)


def etag_of(version: int) -> str:
    return f'W/"{version}"'


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What a reply cost in model tokens, when the agent reports it."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True, slots=True)
class Turn:
    index: int
    status: TurnStatus
    input: str
    create_time_ms: int
    output: str = ""
    complete_time_ms: int = 0
    request_id: str = ""
    error: str = ""
    usage: TokenUsage = TokenUsage()
    first_item_sequence: int = 0
    """The sequence numbers of the turn's items: 0, 0 for a turn without items; a turn of
    written items keeps its range even when it stored none (then last < first), so that
    a retry of it is recognised."""
    last_item_sequence: int = 0
    items: tuple[Item, ...] = ()
    """The turn's items, where the reader asked for them (a Run's result, an agent's
    context); empty elsewhere."""


class ItemType(enum.IntEnum):
    """Numbered as ``agentsessions.sessions.v1.ItemType``."""

    MESSAGE = 1
    TOOL_CALL = 2
    TOOL_RESULT = 3
    REASONING = 4
    OTHER = 5


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a session's history. ``payload_json`` is kept as written, byte for
    byte; ``sequence``, ``turn_index`` and ``create_time_ms`` are the store's to set."""

    type: ItemType
    payload_json: str
    type_name: str = ""
    role: str = ""
    name: str = ""
    call_id: str = ""
    item_id: str = ""
    sequence: int = 0
    turn_index: int = 0
    create_time_ms: int = 0


@dataclass(frozen=True, slots=True)
class ItemsWrite:
    """Items to write as one new turn, atomically, with a state delta: an append, or,
    with ``replace_after`` set, a replace of the items after that sequence number.

    ``expected_last_sequence`` and ``expected_etag`` make it conditional; a
    ``request_id`` already used by the session replays the first write. ``input`` and
    ``output`` are the new turn's text views.
    """

    items: tuple[Item, ...]
    input: str
    output: str
    state_delta: StateDelta
    request_id: str = ""
    expected_last_sequence: int | None = None
    expected_etag: str | None = None
    replace_after: int | None = None


@dataclass(frozen=True, slots=True)
class ItemsWritten:
    """The items of a write as stored (or, for a replay, as the first write stored them)."""

    items: list[Item]
    session: Session
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ItemPage:
    """Items in the order asked for, and whether more follow the last of them."""

    items: list[Item]
    more: bool


@dataclass(frozen=True, slots=True)
class StateDelta:
    """Top-level state keys to set and to remove, applied in one step with a turn."""

    set: dict[str, JsonValue] = field(default_factory=dict)
    delete: frozenset[str] = frozenset()

    def merged(self, later: StateDelta) -> StateDelta:
        updates = {k: v for k, v in self.set.items() if k not in later.delete}
        updates.update(later.set)
        return StateDelta(set=updates, delete=(self.delete - later.set.keys()) | later.delete)

    def __bool__(self) -> bool:
        return bool(self.set or self.delete)


@dataclass(frozen=True, slots=True)
class SessionPatch:
    """The fields an update changes; ``None`` leaves a field as it is."""

    state: dict[str, JsonValue] | None = None
    labels: dict[str, str] | None = None
    ttl_ms: int | None = None
    idle_timeout_ms: int | None = None
    max_turns: int | None = None
    state_removals: frozenset[str] = frozenset()
    """State keys of any scope to remove, before ``state`` (a replacement of the session's
    keys that only sets the user's and the app's) is written."""

    @property
    def state_delta(self) -> StateDelta:
        """What the patch writes to the user's and the app's state: their keys in
        ``state`` set, those in ``state_removals`` removed."""
        return StateDelta(set=self.state or {}, delete=self.state_removals)


@dataclass(frozen=True, slots=True)
class TurnStart:
    """What a run needs once its turn is recorded: the session and the agent's context.

    ``replayed`` is true when the request id named a completed turn: ``turn`` is that
    turn and nothing new was recorded.
    """

    session: Session
    turn: Turn
    history: Sequence[Turn]
    replayed: bool = False
    history_items: list[Item] = field(default_factory=list)
    """The newest items of the history (at most what begin_turn asked for), oldest first."""
    event_sequence: int = 0
    """The sequence number of the turn's RUN_STARTED event (0 on a replay)."""
    watched: bool = False
    """Whether someone watches the session's event log (its run then publishes at once)."""


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """How a turn ended. Only a completed turn keeps an output and a state delta."""

    status: TurnStatus
    output: str = ""
    error: str = ""
    state_delta: StateDelta = field(default_factory=StateDelta)
    usage: TokenUsage = TokenUsage()
    items: tuple[Item, ...] = ()
    """A completed turn's items, numbered and dated: the user's message, what the agent
    did (tool calls and results, messages), its reply."""


@dataclass(frozen=True, slots=True)
class SessionCursor:
    """Where a listing of sessions, newest activity first, left off."""

    last_activity_ms: int
    session_id: str


@dataclass(frozen=True, slots=True)
class SessionPage:
    sessions: list[Session]
    next_cursor: SessionCursor | None


@dataclass(frozen=True, slots=True)
class TurnPage:
    """Turns in the order asked for, and the index where the next page starts (None: done)."""

    turns: list[Turn]
    next_index: int | None


@dataclass(frozen=True, slots=True)
class Fold:
    """Turns ``first_index``..``last_index`` to fold into a new summary, in one atomic step.

    The fold applies only to the session it was planned on (same create time) and only
    if no other fold happened since (``first_index`` is still the oldest in the history).
    ``request_ids`` are those of the folded turns; without ``archive`` they are forgotten.
    """

    first_index: int
    last_index: int
    summary: str
    folded_bytes: int
    request_ids: tuple[str, ...]
    archive: bool
    create_time_ms: int
    items_through: int = 0
    """The items of the folded turns end at this sequence number: they leave with them."""


def text_bytes(turn: Turn) -> int:
    """What a turn adds to ``Session.history_bytes``."""
    return len(turn.input.encode()) + len(turn.output.encode())


def text_of(payload_json: str) -> str:
    """The text an item's payload carries, in the shapes agent frameworks write: a
    ``content`` string or list of parts with ``text``, a ``text``, or ``parts``. A lone
    surrogate (a ``\\ud800`` escape, valid JSON but not text) reads as ``?``."""
    text = _text_in(payload_json)
    return text.encode("utf-8", "replace").decode("utf-8")


def _text_in(payload_json: str) -> str:
    try:
        payload = json.loads(payload_json)
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return payload if isinstance(payload, str) else ""
    for key in ("content", "text", "parts"):
        value = payload.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return "".join(
                part["text"]
                for part in value
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
        if isinstance(value, dict):  # ADK's content: {"role": ..., "parts": [...]}
            return _text_in(json.dumps(value))
    return ""
