"""Protobuf ⇄ domain translation for agentsessions.sessions.v1."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import duration_pb2, timestamp_pb2

from agent_sessions import sessions, state_json, validation
from agent_sessions.errors import InvalidArgument, quote
from agent_sessions.model import (
    Item,
    JsonValue,
    Session,
    SessionPatch,
    SessionStatus,
    StateDelta,
    TokenUsage,
    Turn,
)
from agent_sessions.session_events import EventKind, SessionEvent
from agent_sessions.wire import item_message, item_of

_DURATION_FIELDS = {"ttl": "ttl_ms", "idle_timeout": "idle_timeout_ms"}
UPDATABLE_FIELDS = ("state_json", "labels", "ttl", "idle_timeout", "max_turns")


def timestamp(ms: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


def duration(ms: int) -> duration_pb2.Duration:
    span = duration_pb2.Duration()
    span.FromMilliseconds(ms)
    return span


# Duration's own range: ±10,000 years, with nanos of the seconds' sign below one second.
_MAX_DURATION_SECONDS = 315_576_000_000


def duration_ms(field: str, span: duration_pb2.Duration) -> int:
    """Whole milliseconds; an invalid, negative or sub-millisecond duration is refused."""
    if not (
        abs(span.seconds) <= _MAX_DURATION_SECONDS
        and abs(span.nanos) <= 999_999_999
        and (span.seconds == 0 or span.nanos == 0 or (span.seconds > 0) == (span.nanos > 0))
    ):
        raise InvalidArgument(
            field,
            f"is not a valid Duration (seconds={span.seconds}, nanos={span.nanos}): nanos "
            "must lie between -999999999 and 999999999 with the sign of seconds",
        )
    if span.seconds < 0 or span.nanos < 0:
        raise InvalidArgument(field, "must be a positive duration, got a negative one")
    ms = span.ToMilliseconds()
    if ms <= 0:
        raise InvalidArgument(field, "must be a positive duration of at least 1 ms")
    return ms


# Timestamp's own range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_TIMESTAMP_SECONDS = -62_135_596_800
_MAX_TIMESTAMP_SECONDS = 253_402_300_799


def _timestamp_ms(field: str, stamp: timestamp_pb2.Timestamp) -> int:
    """Milliseconds since the epoch; a timestamp that breaks Timestamp's rules is refused."""
    if not (
        _MIN_TIMESTAMP_SECONDS <= stamp.seconds <= _MAX_TIMESTAMP_SECONDS
        and 0 <= stamp.nanos <= 999_999_999
    ):
        raise InvalidArgument(
            field,
            f"is not a valid timestamp (seconds={stamp.seconds}, nanos={stamp.nanos}): "
            "it must lie between 0001-01-01 and 9999-12-31, with nanos from 0 to 999999999",
        )
    return stamp.ToMilliseconds()


def state_from_json(text: str, field: str = "state_json") -> dict[str, JsonValue]:
    try:
        return state_json.parse_object(text, field=field)
    except state_json.StateJsonError as error:
        raise InvalidArgument(error.path, error.reason) from None


def session_message(session: Session) -> pb.Session:
    return pb.Session(
        session_id=session.session_id,
        app=session.app,
        user_id=session.user_id,
        agent_id=session.agent_id,
        status=cast(pb.SessionStatus, session.status.value),
        create_time=timestamp(session.create_time_ms),
        update_time=timestamp(session.update_time_ms),
        expire_time=timestamp(session.expire_time_ms),
        last_activity_time=timestamp(session.last_activity_ms),
        ttl=duration(session.ttl_ms),
        idle_timeout=duration(session.idle_timeout_ms),
        max_turns=session.max_turns,
        turn_count=session.turn_count,
        total_turns=session.total_turns,
        labels=session.labels,
        summary=session.summary,
        etag=session.etag,
        folded_turns=session.folded_turns,
        history_bytes=session.history_bytes,
        state_json=state_json.dump(session.state),
        external_agent=session.external_agent,
        last_item_sequence=session.last_item_sequence,
    )


def turn_message(turn: Turn) -> pb.Turn:
    message = pb.Turn(
        index=turn.index,
        status=cast(pb.TurnStatus, turn.status.value),
        input=turn.input,
        output=turn.output,
        create_time=timestamp(turn.create_time_ms),
        request_id=turn.request_id,
        error=turn.error,
    )
    if turn.usage.input_tokens or turn.usage.output_tokens:
        message.usage.input_tokens = turn.usage.input_tokens
        message.usage.output_tokens = turn.usage.output_tokens
    if turn.complete_time_ms:
        message.complete_time.CopyFrom(timestamp(turn.complete_time_ms))
    if turn.items:
        message.items.extend(item_message(item) for item in turn.items)
    return message


def create_arguments(request: pb.CreateSessionRequest) -> dict[str, Any]:
    return {
        "app": request.app,
        "user_id": request.user_id,
        "agent_id": request.agent_id,
        "session_id": request.session_id,
        "ttl_ms": duration_ms("ttl", request.ttl) if request.HasField("ttl") else None,
        "idle_timeout_ms": (
            duration_ms("idle_timeout", request.idle_timeout)
            if request.HasField("idle_timeout")
            else None
        ),
        "max_turns": request.max_turns if request.HasField("max_turns") else None,
        "state": state_from_json(request.state_json),
        "labels": dict(request.labels),
        "request_id": request.request_id,
        "external_agent": request.external_agent,
    }


def import_arguments(request: pb.ImportSessionRequest) -> dict[str, Any]:
    """The arguments of ``SessionManager.import_session``."""
    source = request.snapshot
    return {
        "app": source.app,
        "user_id": source.user_id,
        "agent_id": source.agent_id,
        "session_id": source.session_id,
        "ttl_ms": duration_ms("snapshot.ttl", source.ttl) if source.HasField("ttl") else None,
        "idle_timeout_ms": (
            duration_ms("snapshot.idle_timeout", source.idle_timeout)
            if source.HasField("idle_timeout")
            else None
        ),
        # Not optional in the snapshot: 0 is unlimited, as it always is there.
        "max_turns": source.max_turns,
        "state": state_from_json(source.state_json, "snapshot.state_json"),
        "labels": dict(source.labels),
        "summary": source.summary,
        "status": _imported_status(source.status),
        "folded_turns": source.folded_turns,
        "turn_count": source.turn_count,
        "turns": [_imported_turn(i, turn) for i, turn in enumerate(source.turns)],
        "external_agent": source.external_agent,
        "items": [_imported_item(i, item) for i, item in enumerate(source.items)],
        "last_item_sequence": source.last_item_sequence,
    }


def _imported_item(position: int, message: pb.Item) -> Item:
    """An item of a snapshot: its numbering and time are kept, not the store's to set."""
    field = f"snapshot.items[{position}]"
    return dataclasses.replace(
        item_of(message),
        sequence=message.sequence,
        turn_index=message.turn_index,
        create_time_ms=(
            _timestamp_ms(f"{field}.create_time", message.create_time)
            if message.HasField("create_time")
            else 0
        ),
    )


def _imported_status(status: int) -> SessionStatus:
    if status == pb.SESSION_STATUS_UNSPECIFIED:
        return SessionStatus.ACTIVE
    if status not in (pb.SESSION_STATUS_ACTIVE, pb.SESSION_STATUS_ENDED):
        raise InvalidArgument(
            "snapshot.status", f"is {status}; use ACTIVE or ENDED (unspecified means ACTIVE)"
        )
    return SessionStatus(status)


def _imported_turn(position: int, message: pb.Turn) -> Turn:
    field = f"snapshot.turns[{position}]"
    return Turn(
        index=message.index,
        status=validation.finished_turn_status(f"{field}.status", message.status),
        input=message.input,
        output=message.output,
        create_time_ms=_timestamp_ms(f"{field}.create_time", message.create_time),
        complete_time_ms=(
            _timestamp_ms(f"{field}.complete_time", message.complete_time)
            if message.HasField("complete_time")
            else 0
        ),
        request_id=message.request_id,
        error=message.error,
        usage=TokenUsage(message.usage.input_tokens, message.usage.output_tokens),
    )


def session_patch(request: pb.UpdateSessionRequest) -> SessionPatch:
    """The patch that the update mask selects from the request's session."""
    paths = list(request.update_mask.paths)
    if not paths and not request.state_removals:
        raise InvalidArgument(
            "update_mask",
            f"is required: name the fields to change, any of {UPDATABLE_FIELDS} "
            "(or give state_removals)",
        )
    source = request.session
    changes: dict[str, Any] = {"state_removals": frozenset(request.state_removals)}
    for path in paths:
        if path == "state_json":
            changes["state"] = state_from_json(source.state_json, "session.state_json")
        elif path == "labels":
            changes["labels"] = dict(source.labels)
        elif path in _DURATION_FIELDS:
            changes[_DURATION_FIELDS[path]] = duration_ms(path, getattr(source, path))
        elif path == "max_turns":
            changes["max_turns"] = source.max_turns
        else:
            raise InvalidArgument(
                "update_mask",
                f"path {quote(path)} cannot be updated; updatable fields are {UPDATABLE_FIELDS}",
            )
    return SessionPatch(**changes)


def run_event(event: sessions.RunEvent) -> pb.RunEvent:
    if isinstance(event, sessions.RunDelta):
        return pb.RunEvent(delta=pb.RunDelta(text=event.text), sequence=event.sequence)
    if isinstance(event, sessions.RunStarted):
        return pb.RunEvent(
            started=pb.RunStarted(
                turn_index=event.turn_index, replayed=event.replayed, run_id=event.run_id
            ),
            sequence=event.sequence,
        )
    if isinstance(event, sessions.RunItem):
        return pb.RunEvent(item=item_message(event.item), sequence=event.sequence)
    return pb.RunEvent(
        completed=pb.RunCompleted(
            turn=turn_message(event.turn), session=session_message(event.session)
        ),
        sequence=event.sequence,
    )


def session_event(event: SessionEvent) -> pb.SessionEvent:
    """A session's event as WatchSession streams it."""
    message = pb.SessionEvent(
        sequence=event.sequence,
        event_time=timestamp(event.time_ms),
        run_id=event.run_id,
        turn_index=event.turn_index,
    )
    kind = event.kind
    session = event.session
    if kind is EventKind.RUN_STARTED:
        message.run_started.CopyFrom(
            pb.RunStarted(turn_index=event.turn_index, run_id=event.run_id)
        )
    elif kind is EventKind.DELTA:
        message.delta.text = event.text
    elif kind is EventKind.ITEM and event.item is not None:
        message.item.CopyFrom(item_message(event.item))
    elif kind is EventKind.TURN_COMMITTED and event.turn is not None and session is not None:
        message.turn_committed.turn.CopyFrom(turn_message(event.turn))
        message.turn_committed.session.CopyFrom(session_message(session))
    elif kind is EventKind.SESSION_UPDATED and session is not None:
        message.session_updated.CopyFrom(session_message(session))
    elif kind is EventKind.COMPRESSED and session is not None:
        message.compressed.CopyFrom(session_message(session))
    elif kind is EventKind.ENDED and session is not None:
        message.ended.CopyFrom(session_message(session))
    elif kind is EventKind.DELETED:
        message.deleted.SetInParent()
    elif kind is EventKind.EXPIRED:
        message.expired.SetInParent()
    elif kind is EventKind.GAP:
        message.gap.first_available_sequence = event.first_sequence
    return message


def newest_first(order_by: str, *, key: str = "index") -> bool:
    normalized = " ".join(order_by.lower().split())
    if normalized in ("", key, f"{key} asc"):
        return False
    if normalized == f"{key} desc":
        return True
    raise InvalidArgument(
        "order_by", f"{quote(order_by)} is not supported: use '{key}' or '{key} desc'"
    )


def state_delta(request: pb.AppendItemsRequest) -> StateDelta:
    return StateDelta(
        set=state_from_json(request.state_delta_json, "state_delta_json"),
        delete=frozenset(request.state_removals),
    )
