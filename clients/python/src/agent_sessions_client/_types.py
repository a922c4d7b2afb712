"""Plain Python views of sessions, turns and items, as the client hands them out."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import duration_pb2, timestamp_pb2


class SessionStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"


class TurnStatus(enum.Enum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A snapshot of a session (no history); ``etag`` makes a later write conditional.

    ``total_turns`` counts every turn ever run, ``turn_count`` the completed ones. Turns
    1 to ``folded_turns`` were folded into ``summary`` by compression; the history holds
    the turns after them, ``history_bytes`` UTF-8 bytes of inputs and outputs.

    ``external_agent`` sessions have their history written by the caller (items), and
    refuse runs. ``last_item_sequence`` is the sequence number of the last item ever
    written, whether or not it is still in the history (a pop, a clear or a replace
    does not lower it).

    ``app`` is the application the session belongs to ("" for the default app): apps
    keep their sessions apart, so the same ``session_id`` under two apps is two sessions.
    """

    session_id: str
    user_id: str
    agent_id: str
    status: SessionStatus
    create_time: datetime
    update_time: datetime
    expire_time: datetime
    last_activity_time: datetime
    ttl: timedelta
    idle_timeout: timedelta
    max_turns: int
    turn_count: int
    total_turns: int
    state: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    etag: str = ""
    folded_turns: int = 0
    history_bytes: int = 0
    external_agent: bool = False
    last_item_sequence: int = 0
    app: str = ""


@dataclass(frozen=True, slots=True)
class Compressed:
    """What a compression did: the session after it (``info``), how many turns this call
    folded into the summary (0 when the history was already short enough), and which
    summarizer wrote the summary (``"agent"`` or ``"extractive"``; empty if none ran)."""

    info: SessionInfo
    folded_turns: int
    summarizer: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Model tokens a turn cost, when the agent reported them (else zeros)."""

    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange: the user's input and the agent's reply (``output``)."""

    index: int
    status: TurnStatus
    input: str
    output: str
    create_time: datetime
    complete_time: datetime | None
    request_id: str = ""
    error: str = ""
    usage: TokenUsage = TokenUsage()


class ItemType(enum.Enum):
    """The kinds of item; ``OTHER`` needs an ``Item.type_name``."""

    MESSAGE = "MESSAGE"
    TOOL_CALL = "TOOL_CALL"
    TOOL_RESULT = "TOOL_RESULT"
    REASONING = "REASONING"
    OTHER = "OTHER"


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a session's history: a message, a tool call or its result, a
    reasoning step, or another type the writer names (``type_name``).

    ``payload_json`` is the item itself as JSON text, stored and returned byte for
    byte; :attr:`payload` parses it. ``item_id`` is an optional id of the writer's,
    unique in the session (an item whose id the session holds is not stored again).
    ``sequence``, ``turn_index`` and ``create_time`` are set by the server: they are
    ignored in a write and filled in the items it returns.

    ::

        Item.message("user", "How's the weather in Shanghai?")
        Item.tool_call("get_weather", {"city": "Shanghai"}, call_id="call-1")
        Item.tool_result("call-1", "sunny, 22°C", name="get_weather")
        Item(ItemType.OTHER, '{"type": "file_search_call"}', type_name="file_search_call")
    """

    type: ItemType
    payload_json: str
    type_name: str = ""
    role: str = ""
    name: str = ""
    call_id: str = ""
    item_id: str = ""
    sequence: int = 0
    turn_index: int = 0
    create_time: datetime | None = None

    @property
    def payload(self) -> Any:
        """The payload, parsed."""
        return json.loads(self.payload_json)

    @classmethod
    def message(cls, role: str, content: Any, *, item_id: str = "") -> Item:
        """A message (``role``: "user", "assistant", "system"...) whose payload is
        ``{"role": role, "content": content}``; ``content`` is text, or any JSON value
        such as a list of parts."""
        return cls(
            ItemType.MESSAGE,
            payload_text({"role": role, "content": content}),
            role=role,
            item_id=item_id,
        )

    @classmethod
    def tool_call(
        cls, name: str, arguments: Any, *, call_id: str, role: str = "assistant", item_id: str = ""
    ) -> Item:
        """A call of the tool ``name``, paired with its result by ``call_id``. The payload
        is ``{"name", "arguments", "call_id"}``, ``arguments`` as JSON text (a dict is
        encoded), as chat completions and the Responses API carry them."""
        if not isinstance(arguments, str):
            arguments = payload_text(arguments)
        payload = {"name": name, "arguments": arguments, "call_id": call_id}
        return cls(
            ItemType.TOOL_CALL,
            payload_text(payload),
            role=role,
            name=name,
            call_id=call_id,
            item_id=item_id,
        )

    @classmethod
    def tool_result(
        cls, call_id: str, output: Any, *, name: str = "", role: str = "tool", item_id: str = ""
    ) -> Item:
        """What the call ``call_id`` returned: the payload is ``{"call_id", "output"}``,
        ``output`` text or any JSON value."""
        return cls(
            ItemType.TOOL_RESULT,
            payload_text({"call_id": call_id, "output": output}),
            role=role,
            name=name,
            call_id=call_id,
            item_id=item_id,
        )


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run, as :meth:`AsyncSession.stream_events` and
    :meth:`AsyncSession.resume` yield them.

    ``kind`` says what happened, and which fields are set:

    - ``"started"``: the turn ``turn_index`` was recorded (``replayed`` when the run
      replays a completed turn with the same request id);
    - ``"delta"``: ``text``, a piece of the reply, in order;
    - ``"item"``: ``item``, something the agent did (a tool call, its result, a message),
      unnumbered until the turn is stored;
    - ``"completed"``: the stored ``turn`` and the session after it (``info``); always
      the last event of a run that succeeded.

    ``sequence`` is the event's number in the session's event log, set on the events of
    a detached run and of a resumed one (0 otherwise): resume after the last one
    received. ``run_id`` is the run's id (for :meth:`AsyncSession.resume`) once known:
    from the started event on, or the id a resume named; empty on a replay.
    """

    kind: str
    sequence: int = 0
    run_id: str = ""
    turn_index: int = 0
    replayed: bool = False
    text: str = ""
    item: Item | None = None
    turn: Turn | None = None
    info: SessionInfo | None = None


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """Something that happened to a session, as :meth:`AsyncSession.watch` yields it.

    ``kind`` says what, and which fields are set:

    - ``"run_started"``: a run recorded the turn ``turn_index`` (``replayed`` on a
      replay) and called the agent;
    - ``"delta"``: ``text``, a piece of a running turn's reply, in order;
    - ``"item"``: ``item``, something the agent of a running turn did (unnumbered);
    - ``"turn_committed"``: ``turn`` was stored (completed by a run or an append of
      items, failed or cancelled), ``info`` the session after it;
    - ``"session_updated"``: the session was updated or its history changed (items
      popped, cleared): ``info``;
    - ``"compressed"``: turns were folded into the summary: ``info``;
    - ``"ended"``: the session was ended: ``info``;
    - ``"deleted"``, ``"expired"``: the session is gone; the last event of a watch
      (:attr:`final`);
    - ``"gap"``: the events after the watcher's sequence number are no longer held,
      the oldest it still holds being ``first_available_sequence`` (0: none): re-read
      the session and its history, then go on from this event.

    ``sequence`` is the event's number, monotonic per session: watch again after the
    last one received to get what was missed. ``time`` is when it happened. ``run_id``
    and ``turn_index`` name the run and the turn of run events and committed turns.
    """

    kind: str
    sequence: int
    time: datetime | None = None
    run_id: str = ""
    turn_index: int = 0
    replayed: bool = False
    text: str = ""
    item: Item | None = None
    turn: Turn | None = None
    info: SessionInfo | None = None
    first_available_sequence: int = 0

    @property
    def final(self) -> bool:
        """True for the last event of a watch: the session was deleted or expired."""
        return self.kind in ("deleted", "expired")


def payload_text(value: Any) -> str:
    """A payload as the helpers of :class:`Item` write it: readable JSON, non-ASCII text
    kept as is."""
    return json.dumps(value, ensure_ascii=False)


def _time(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def session_info(message: pb.Session) -> SessionInfo:
    return SessionInfo(
        session_id=message.session_id,
        user_id=message.user_id,
        agent_id=message.agent_id,
        status=SessionStatus(pb.SessionStatus.Name(message.status).removeprefix("SESSION_STATUS_")),
        create_time=_time(message.create_time),
        update_time=_time(message.update_time),
        expire_time=_time(message.expire_time),
        last_activity_time=_time(message.last_activity_time),
        ttl=message.ttl.ToTimedelta(),
        idle_timeout=message.idle_timeout.ToTimedelta(),
        max_turns=message.max_turns,
        turn_count=message.turn_count,
        total_turns=message.total_turns,
        state=state_dict(message.state_json),
        labels=dict(message.labels),
        summary=message.summary,
        etag=message.etag,
        folded_turns=message.folded_turns,
        history_bytes=message.history_bytes,
        external_agent=message.external_agent,
        last_item_sequence=message.last_item_sequence,
        app=message.app,
    )


def compressed(message: pb.CompressSessionResponse) -> Compressed:
    return Compressed(
        info=session_info(message.session),
        folded_turns=message.folded_turns,
        summarizer=message.summarizer,
    )


def turn(message: pb.Turn) -> Turn:
    return Turn(
        index=message.index,
        status=TurnStatus(pb.TurnStatus.Name(message.status).removeprefix("TURN_STATUS_")),
        input=message.input,
        output=message.output,
        create_time=_time(message.create_time),
        complete_time=_time(message.complete_time) if message.HasField("complete_time") else None,
        request_id=message.request_id,
        error=message.error,
        usage=TokenUsage(message.usage.input_tokens, message.usage.output_tokens),
    )


def item(message: pb.Item) -> Item:
    return Item(
        type=ItemType(pb.ItemType.Name(message.type).removeprefix("ITEM_TYPE_")),
        payload_json=message.payload_json,
        type_name=message.type_name,
        role=message.role,
        name=message.name,
        call_id=message.call_id,
        item_id=message.item_id,
        sequence=message.sequence,
        turn_index=message.turn_index,
        create_time=_time(message.create_time) if message.HasField("create_time") else None,
    )


def run_event(message: pb.RunEvent, *, run_id: str = "", turn_index: int = 0) -> RunEvent:
    """A run's event; ``run_id`` and ``turn_index`` are what its run's earlier events
    said, for the events that do not say it themselves."""
    kind = message.WhichOneof("event") or ""
    if kind == "started":
        started = message.started
        return RunEvent(
            kind,
            message.sequence,
            run_id=started.run_id or run_id,
            turn_index=started.turn_index,
            replayed=started.replayed,
        )
    if kind == "completed":
        stored = turn(message.completed.turn)
        return RunEvent(
            kind,
            message.sequence,
            run_id=run_id,
            turn_index=stored.index,
            turn=stored,
            info=session_info(message.completed.session),
        )
    return RunEvent(
        kind,
        message.sequence,
        run_id=run_id,
        turn_index=turn_index,
        text=message.delta.text if kind == "delta" else "",
        item=item(message.item) if kind == "item" else None,
    )


def session_event(message: pb.SessionEvent) -> SessionEvent:
    kind = message.WhichOneof("event") or ""
    info: pb.Session | None = None
    if kind in ("session_updated", "compressed", "ended"):
        info = getattr(message, kind)
    elif kind == "turn_committed":
        info = message.turn_committed.session
    committed = turn(message.turn_committed.turn) if kind == "turn_committed" else None
    started = message.run_started if kind == "run_started" else None
    return SessionEvent(
        kind,
        message.sequence,
        time=_time(message.event_time) if message.HasField("event_time") else None,
        run_id=message.run_id or (started.run_id if started else ""),
        turn_index=message.turn_index
        or (started.turn_index if started else 0)
        or (committed.index if committed else 0),
        replayed=started.replayed if started else False,
        text=message.delta.text if kind == "delta" else "",
        item=item(message.item) if kind == "item" else None,
        turn=committed,
        info=session_info(info) if info is not None else None,
        first_available_sequence=message.gap.first_available_sequence if kind == "gap" else 0,
    )


def item_message(value: Item) -> pb.Item:
    """The item as a write carries it: the server sets the output-only fields."""
    return pb.Item(
        type="ITEM_TYPE_" + value.type.value,
        payload_json=value.payload_json,
        type_name=value.type_name,
        role=value.role,
        name=value.name,
        call_id=value.call_id,
        item_id=value.item_id,
    )


def state_dict(text: str) -> dict[str, Any]:
    """The state a session's ``state_json`` holds: exact, ints stay ints."""
    if not text:
        return {}
    values: dict[str, Any] = json.loads(text)
    return values


def state_json(values: Mapping[str, Any]) -> str:
    """A state as the contract carries it. NaN and infinities are written as such, for
    the server to refuse with INVALID_ARGUMENT naming the key."""
    return json.dumps(dict(values), ensure_ascii=False, separators=(",", ":"))


def duration(span: timedelta) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.FromTimedelta(span)
    return message
