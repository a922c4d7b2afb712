"""Plain Python views of sessions and turns, as the client hands them out."""

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
