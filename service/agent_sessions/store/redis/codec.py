"""How the Redis store writes sessions and turns into Redis values, and reads them back.

This is the stored format: existing data must keep reading, so a change here is a
migration.

- A session's meta hash holds :data:`META_FIELDS`; scripts reply with its values in that
  order (HMGET). Labels are a JSON object, the running turn is ``run_index`` (0: none),
  ``run_id`` and ``lease_ms``.
- Its state hash maps each top-level state key to the key's JSON value.
- A turn is compact JSON ``{"ct":…,"rq":…,"in":…,"s":…,"dt":…,"out":…,"err":…,"ti":…,
  "to":…}`` whose fields that never change come first, so that a script fails an
  abandoned turn by swapping its fixed tail (:data:`OPEN_TURN_TAIL`) without decoding
  the user's text. Its index is its position, not a field.
- A finished turn of :data:`DEFAULT_COMPRESS_OVER_BYTES` or more (configurable) whose
  zstd frame is smaller is stored as ``Z``, its status digit and that frame, so that
  scripts still read its status. The client carries the frame's bytes as text with
  ``encoding_errors="surrogateescape"``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload

from zstandard import ZstdCompressor, ZstdDecompressor

from agent_sessions.model import (
    Item,
    ItemType,
    JsonValue,
    RunningTurn,
    Session,
    SessionPatch,
    SessionStatus,
    TokenUsage,
    Turn,
    TurnStatus,
)
from agent_sessions.session_events import EventKind, SessionEvent
from agent_sessions.store.protocol import ABANDONED_TURN_ERROR

Arg = str | int | bytes
"""A script argument as the client sends it."""

META_FIELDS = (
    "user_id",
    "agent_id",
    "status",
    "create_ms",
    "update_ms",
    "activity_ms",
    "ttl_ms",
    "idle_ms",
    "max_turns",
    "turn_count",
    "total_turns",
    "version",
    "labels",
    "summary",
    "run_index",
    "run_id",
    "lease_ms",
    "create_request_id",
    "folded_turns",
    "history_bytes",
    "external",
    "item_seq",
    "expire_ms",
)
"""Fields of the meta hash, in the order replies carry them; ``expire_ms`` stays last."""

OPEN_TURN_TAIL = ',"s":1,"dt":0,"out":"","err":""}'
"""How the JSON of a turn in progress ends; finishing the turn replaces this tail."""

ABANDONED_TAIL_BEFORE_TIME = f',"s":{int(TurnStatus.FAILED)},"dt":'
ABANDONED_TAIL_AFTER_TIME = ',"out":"","err":' + json.dumps(ABANDONED_TURN_ERROR) + "}"
"""The tail of a turn failed because its run's lease ran out: before and after its
completion time, which the script that fails it puts in between (it has no usage)."""

DEFAULT_COMPRESS_OVER_BYTES = 512

_ZSTD_MARK = "Z"
_zstd_compress = ZstdCompressor(level=3).compress
_zstd_decompress = ZstdDecompressor().decompress

_SESSION_STATUS = {int(s): s for s in SessionStatus}
_TURN_STATUS = {int(s): s for s in TurnStatus}
_ITEM_TYPE = {int(t): t for t in ItemType}
_COMPLETED = int(TurnStatus.COMPLETED)

_json_decode = json.loads
_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# --- sessions -------------------------------------------------------------------------


def meta_values(session: Session) -> list[Arg]:
    """The values of :data:`META_FIELDS` of a new session, in order."""
    running = session.running
    return [
        session.user_id,
        session.agent_id,
        int(session.status),
        session.create_time_ms,
        session.update_time_ms,
        session.last_activity_ms,
        session.ttl_ms,
        session.idle_timeout_ms,
        session.max_turns,
        session.turn_count,
        session.total_turns,
        session.version,
        _json_encode(session.labels),
        session.summary,
        running.index if running else 0,
        running.run_id if running else "",
        running.lease_until_ms if running else 0,
        session.create_request_id,
        session.folded_turns,
        session.history_bytes,
        "1" if session.external_agent else "0",
        session.last_item_sequence,
        session.expire_time_ms,
    ]


def patch_fields(patch: SessionPatch) -> list[Arg]:
    """Meta field, value pairs of what ``patch`` sets (its state apart)."""
    fields: list[Arg] = []
    if patch.labels is not None:
        fields += ("labels", _json_encode(patch.labels))
    if patch.ttl_ms is not None:
        fields += ("ttl_ms", patch.ttl_ms)
    if patch.idle_timeout_ms is not None:
        fields += ("idle_ms", patch.idle_timeout_ms)
    if patch.max_turns is not None:
        fields += ("max_turns", patch.max_turns)
    return fields


def state_pairs(state: Mapping[str, JsonValue]) -> list[str]:
    """State key, JSON value pairs, flat, as HSET takes them."""
    pairs: list[str] = []
    for key, value in state.items():
        pairs += (key, _json_encode(value))
    return pairs


def decode_session(session_id: str, meta: list[str], state: list[str], *, app: str = "") -> Session:
    """The session of a script's reply: ``meta`` the values of :data:`META_FIELDS` in
    order, ``state`` the merged state as a flat HGETALL-like array."""
    (
        user_id,
        agent_id,
        status,
        create_ms,
        update_ms,
        activity_ms,
        ttl_ms,
        idle_ms,
        max_turns,
        turn_count,
        total_turns,
        version,
        labels,
        summary,
        run_index,
        run_id,
        lease_ms,
        create_request_id,
        folded_turns,
        history_bytes,
        external,
        item_seq,
        _expire_ms,
    ) = meta
    pairs = iter(state)
    return Session(
        app=app,
        session_id=session_id,
        user_id=user_id,
        agent_id=agent_id,
        status=_SESSION_STATUS[int(status)],
        create_time_ms=int(create_ms),
        update_time_ms=int(update_ms),
        last_activity_ms=int(activity_ms),
        ttl_ms=int(ttl_ms),
        idle_timeout_ms=int(idle_ms),
        max_turns=int(max_turns),
        turn_count=int(turn_count),
        total_turns=int(total_turns),
        state={key: _json_decode(value) for key, value in zip(pairs, pairs, strict=True)},
        labels=_json_decode(labels) if labels != "{}" else {},
        summary=summary,
        version=int(version),
        running=RunningTurn(int(run_index), run_id, int(lease_ms)) if run_index != "0" else None,
        create_request_id=create_request_id,
        # Sessions written before compression existed lack these fields.
        folded_turns=int(folded_turns or 0),
        history_bytes=int(history_bytes or 0),
        # And sessions written before items existed, these.
        external_agent=external == "1",
        last_item_sequence=int(item_seq or 0),
    )


# --- turns ----------------------------------------------------------------------------


def open_turn(create_ms: int, request_id: str, text: str) -> str:
    """A new turn in progress with the user's input, as the turns list holds it."""
    return _turn_head(create_ms, request_id, text) + OPEN_TURN_TAIL


def encode_turn(turn: Turn, *, compress_over_bytes: int) -> str | bytes:
    """A finished turn as the turns list holds it: JSON, or compressed when large (never
    with ``compress_over_bytes`` 0)."""
    text = _turn_head(turn.create_time_ms, turn.request_id, turn.input) + _turn_tail(turn)
    if not compress_over_bytes or len(text) * 4 < compress_over_bytes:
        return text  # too short even at 4 bytes per character
    raw = text.encode()
    if len(raw) < compress_over_bytes:
        return text
    packed = _zstd_compress(raw)
    if len(packed) + 2 >= len(raw):
        return text
    return f"{_ZSTD_MARK}{int(turn.status)}".encode() + packed


def decode_turn(element: str, index: int) -> Turn:
    """Turn ``index`` from its stored element."""
    return _turn_of(_fields(element), index)


def decode_turns(indexes: Iterable[int], elements: list[str]) -> list[Turn]:
    """The turns of these indexes from their stored elements, in the same order."""
    return [_turn_of(f, index) for index, f in zip(indexes, _all_fields(elements), strict=True)]


def decode_completed(first_index: int, elements: list[str]) -> Sequence[Turn]:
    """The completed turns among consecutive elements, the first of them turn
    ``first_index``: an agent's context, each turn decoded when it is read (most agents
    read the last one or two)."""
    return _LazyTurns(
        [
            (index, element)
            for index, element in enumerate(elements, first_index)
            if _status_of(element) == _COMPLETED
        ]
    )


# A turn's status key: `,"` never occurs inside a JSON string (its quotes are escaped),
# and the keys before it ("ct", "rq", "in") hold no object.
_STATUS = re.compile(r',"s":(\d)')


def _status_of(element: str) -> int:
    if element.startswith(_ZSTD_MARK):
        return int(element[1])  # the mark, then the status digit
    found = _STATUS.search(element)
    return int(found.group(1)) if found else 0


class _LazyTurns(Sequence[Turn]):
    """Stored turns (index, element), decoded when read and kept."""

    __slots__ = ("_decoded", "_entries")

    def __init__(self, entries: list[tuple[int, str]]) -> None:
        self._entries = entries
        self._decoded: dict[int, Turn] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, position: int) -> Turn: ...

    @overload
    def __getitem__(self, position: slice) -> Sequence[Turn]: ...

    def __getitem__(self, position: int | slice) -> Turn | Sequence[Turn]:
        if isinstance(position, slice):
            return [self[i] for i in range(len(self._entries))[position]]
        if position < 0:
            position += len(self._entries)
        turn = self._decoded.get(position)
        if turn is None:
            index, element = self._entries[position]  # IndexError past the end
            turn = self._decoded[position] = decode_turn(element, index)
        return turn

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable cache, compared by value

    def __repr__(self) -> str:
        return f"turns {[index for index, _ in self._entries]}"


def _turn_head(create_ms: int, request_id: str, text: str) -> str:
    """The start of a turn's JSON: the fields that never change."""
    return f'{{"ct":{create_ms},"rq":{_json_encode(request_id)},"in":{_json_encode(text)}'


def _turn_tail(turn: Turn) -> str:
    """The end of a finished turn's JSON, which replaces ``OPEN_TURN_TAIL``."""
    usage = turn.usage
    items = (
        f',"is":{turn.first_item_sequence},"ie":{turn.last_item_sequence}'
        if turn.first_item_sequence
        else ""
    )
    return (
        f',"s":{int(turn.status)},"dt":{turn.complete_time_ms},'
        f'"out":{_json_encode(turn.output)},"err":{_json_encode(turn.error)},'
        f'"ti":{usage.input_tokens},"to":{usage.output_tokens}{items}}}'
    )


def _all_fields(elements: list[str]) -> list[dict[str, Any]]:
    if any(element.startswith(_ZSTD_MARK) for element in elements):
        return [_fields(element) for element in elements]
    # One parse of the joined elements costs far less than a json.loads call each.
    decoded: list[dict[str, Any]] = _json_decode("[" + ",".join(elements) + "]")
    return decoded


def _fields(element: str) -> dict[str, Any]:
    if element.startswith(_ZSTD_MARK):
        # Mark, status digit, then the zstd frame: bytes that surrogateescape kept intact.
        element = _zstd_decompress(element[2:].encode("utf-8", "surrogateescape")).decode()
    fields: dict[str, Any] = _json_decode(element)
    return fields


def _turn_of(fields: dict[str, Any], index: int) -> Turn:
    return Turn(
        index=index,
        status=_TURN_STATUS[fields["s"]],
        input=fields["in"],
        create_time_ms=fields["ct"],
        output=fields["out"],
        complete_time_ms=fields["dt"],
        request_id=fields["rq"],
        error=fields["err"],
        # A turn failed by the lease script has no usage.
        usage=TokenUsage(fields.get("ti", 0), fields.get("to", 0)),
        # Only a turn of written items keeps its item range.
        first_item_sequence=fields.get("is", 0),
        last_item_sequence=fields.get("ie", 0),
    )


# --- items ----------------------------------------------------------------------------


def items_turn_head(create_ms: int, request_id: str, text_in: str, text_out: str) -> str:
    """The JSON of a turn of written items less its item range and closing brace, which
    the script adds: completed, never compressed (a replay reads its range in Lua)."""
    return (
        _turn_head(create_ms, request_id, text_in)
        + f',"s":{_COMPLETED},"dt":{create_ms},"out":{_json_encode(text_out)},"err":"",'
        + '"ti":0,"to":0'
    )


def item_body(item: Item) -> str:
    """An item's record less its sequence, turn and time, which the script puts first."""
    return (
        f'"ty":{int(item.type)},"tn":{_json_encode(item.type_name)},'
        f'"r":{_json_encode(item.role)},"n":{_json_encode(item.name)},'
        f'"c":{_json_encode(item.call_id)},"i":{_json_encode(item.item_id)},'
        f'"p":{_json_encode(item.payload_json)}}}'
    )


def item_record(item: Item) -> str:
    """A numbered item's whole record, as a turn's commit stores it."""
    return f'{{"q":{item.sequence},"t":{item.turn_index},"ct":{item.create_time_ms},' + item_body(
        item
    )


def decode_items(records: list[str]) -> list[Item]:
    """Items from their records; the payload comes back as the very text written."""
    if not records:
        return []
    return decode_item_array("[" + ",".join(records) + "]")


def decode_item_array(text: str) -> list[Item]:
    """Items from a JSON array of their records."""
    fields: list[dict[str, Any]] = _json_decode(text)
    return [
        Item(
            type=_ITEM_TYPE[f["ty"]],
            payload_json=f["p"],
            type_name=f["tn"],
            role=f["r"],
            name=f["n"],
            call_id=f["c"],
            item_id=f["i"],
            sequence=f["q"],
            turn_index=f["t"],
            create_time_ms=f["ct"],
        )
        for f in fields
    ]


def event_fields(event: SessionEvent) -> tuple[int, str]:
    """A running turn's DELTA or ITEM event as a log entry's kind and 'x' field."""
    if event.kind is EventKind.ITEM and event.item is not None:
        return int(event.kind), item_record(event.item)
    return int(event.kind), event.text


def event_sequence(entry_id: str) -> int:
    """The sequence number of a log entry's id, ``0-<sequence>``."""
    return int(entry_id.partition("-")[2])


def decode_event(entry_id: str, fields: Mapping[str, str]) -> tuple[SessionEvent, list[str]]:
    """A log entry's event, less the session it may carry, and that session's meta and
    state arrays (empty when it carries none: the store decodes the session)."""
    kind = EventKind(int(fields["k"]))
    turn_index = int(fields.get("i") or 0)
    text = ""
    item = None
    turn = None
    if kind is EventKind.DELTA:
        text = fields["x"]
    elif kind is EventKind.ITEM:
        item = decode_items([fields["x"]])[0]
    elif kind is EventKind.TURN_COMMITTED:
        turn = decode_turn(fields["x"], turn_index)
        turn = dataclasses.replace(turn, items=tuple(decode_item_array(fields["y"])))
    event = SessionEvent(
        kind=kind,
        sequence=event_sequence(entry_id),
        time_ms=int(fields["t"]),
        run_id=fields.get("r", ""),
        turn_index=turn_index,
        text=text,
        item=item,
        turn=turn,
        request_id=fields.get("q", ""),
    )
    if "m" not in fields:
        return event, []
    return event, [fields["m"], fields["s"]]


def decode_reply_arrays(meta_json: str, state_json: str) -> tuple[list[str], list[str]]:
    """The meta and state arrays an event's session was logged with (Lua's cjson writes
    a missing field as false, and an empty array as an object)."""
    meta = [value if isinstance(value, str) else None for value in _json_decode(meta_json)]
    state = _json_decode(state_json)
    return meta, (state if isinstance(state, list) else [])  # type: ignore[return-value]
