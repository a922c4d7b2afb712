"""Sessions as JSON-ready records, for export and import (``sessionctl export|import``).

A record is a session with its whole history::

    {"session_id", "user_id", "agent_id", "status", "ttl_seconds",
     "idle_timeout_seconds", "max_turns", "state", "labels", "summary",
     "turns": [{"index", "status", "input", "output", "create_time",
                "complete_time", "request_id", "error", "usage"}, ...]}

Times are ISO 8601. An imported session starts a fresh life (its expiry counts from
the import); its turns keep their times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import timestamp_pb2
from sessions.v1 import sessions_pb2 as pb

from agent_sessions_client._types import SessionInfo, Turn, duration, struct


def export_record(info: SessionInfo, turns: Iterable[Turn]) -> dict[str, Any]:
    return {
        "session_id": info.session_id,
        "user_id": info.user_id,
        "agent_id": info.agent_id,
        "status": info.status.value,
        "ttl_seconds": info.ttl.total_seconds(),
        "idle_timeout_seconds": info.idle_timeout.total_seconds(),
        "max_turns": info.max_turns,
        "state": info.state,
        "labels": info.labels,
        "summary": info.summary,
        "turns": [
            {
                "index": t.index,
                "status": t.status.value,
                "input": t.input,
                "output": t.output,
                "create_time": t.create_time.isoformat(),
                "complete_time": t.complete_time.isoformat() if t.complete_time else None,
                "request_id": t.request_id,
                "error": t.error,
                "usage": {
                    "input_tokens": t.usage.input_tokens,
                    "output_tokens": t.usage.output_tokens,
                },
            }
            for t in turns
        ],
    }


def _timestamp(text: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(text))
    return stamp


def import_request(record: Mapping[str, Any], user_id: str | None) -> pb.ImportSessionRequest:
    """The request that re-creates ``record``, owned by ``user_id`` when given.

    Raises ``KeyError`` or ``ValueError`` for a record that is not one.
    """
    session = pb.Session(
        session_id=record["session_id"],
        user_id=user_id or record["user_id"],
        agent_id=record["agent_id"],
        status="SESSION_STATUS_" + record.get("status", "ACTIVE"),
        max_turns=int(record.get("max_turns", 0)),
        labels=dict(record.get("labels", {})),
        summary=record.get("summary", ""),
    )
    if record.get("ttl_seconds"):
        session.ttl.CopyFrom(duration(timedelta(seconds=record["ttl_seconds"])))
    if record.get("idle_timeout_seconds"):
        session.idle_timeout.CopyFrom(duration(timedelta(seconds=record["idle_timeout_seconds"])))
    if record.get("state"):
        session.state.CopyFrom(struct(dict(record["state"])))
    request = pb.ImportSessionRequest(session=session)
    for item in record.get("turns", []):
        message = request.turns.add(
            index=int(item["index"]),
            status="TURN_STATUS_" + item["status"],
            input=item["input"],
            output=item.get("output", ""),
            request_id=item.get("request_id", ""),
            error=item.get("error", ""),
        )
        usage = item.get("usage") or {}
        message.usage.input_tokens = int(usage.get("input_tokens", 0))
        message.usage.output_tokens = int(usage.get("output_tokens", 0))
        message.create_time.CopyFrom(_timestamp(item["create_time"]))
        if item.get("complete_time"):
            message.complete_time.CopyFrom(_timestamp(item["complete_time"]))
    return request
