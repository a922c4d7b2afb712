"""Sessions as JSON-ready records, for export and import (``sessionctl export|import``).

A record is a session with its whole history::

    {"session_id", "user_id", "app", "agent_id", "status", "ttl_seconds",
     "idle_timeout_seconds", "max_turns", "state", "labels", "summary",
     "folded_turns", "turn_count", "external_agent", "last_item_sequence",
     "turns": [{"index", "status", "input", "output", "create_time",
                "complete_time", "request_id", "error", "usage"}, ...],
     "items": [{"sequence", "turn_index", "type", "type_name", "role", "name",
                "call_id", "item_id", "payload_json", "create_time"}, ...]}

Times are ISO 8601. An imported session starts a fresh life (its expiry counts from
the import); its turns keep their times. It goes back to its app (``app``, "" for the
default app) unless the import names another.

A compressed session's turns 1 to ``folded_turns`` live on only in ``summary``: the
record's turns run from ``folded_turns + 1`` to the last, without gaps, and
``turn_count`` (the completed turns, folded ones included) tells the import how many of
the folded turns had completed. Records written before compression existed lack both
fields and import as uncompressed (0 folded turns); records written before items
existed lack the item fields and import without items; records written before apps
existed lack ``app`` and import into the default app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import timestamp_pb2

from agent_sessions_client._errors import AbortedError
from agent_sessions_client._types import Item, SessionInfo, Turn, duration, state_json

# Rounds of (read the turns, read the session) before an export gives up on a session
# that keeps changing under it.
EXPORT_ATTEMPTS = 3


def snapshot_turns(info: SessionInfo, turns: Sequence[Turn]) -> list[Turn] | None:
    """The turns that go with ``info`` (read after them), or None to read both again.

    The turns must be read first: the session may be compressed meanwhile (the server
    does it on its own after a turn), and then ``info`` has the newer summary and
    folded_turns. Turns it folded are dropped, since the summary now stands for them;
    what is left must be the history as ``info`` describes it, from
    ``folded_turns + 1`` to ``total_turns`` without gaps. It is not when a turn started
    after the turns were read (or a fold happened between pages in a way the above
    does not mend), and a new read will do.
    """
    kept = [t for t in turns if t.index > info.folded_turns]
    expected = range(info.folded_turns + 1, info.total_turns + 1)
    if [t.index for t in kept] != list(expected):
        return None
    return kept


def changing_session(info: SessionInfo) -> AbortedError:
    """The error for a session whose turns and summary never agreed in any read."""
    return AbortedError(
        f"session {info.session_id} kept changing while it was exported (turns running or "
        f"compressed meanwhile) in {EXPORT_ATTEMPTS} attempts; export it again later",
        reason="EXPORT_INCONSISTENT",
    )


def export_record(
    info: SessionInfo, turns: Sequence[Turn], items: Iterable[Item] = ()
) -> dict[str, Any]:
    kept = {t.index for t in turns}
    return {
        "session_id": info.session_id,
        "user_id": info.user_id,
        "app": info.app,
        "agent_id": info.agent_id,
        "status": info.status.value,
        "ttl_seconds": info.ttl.total_seconds(),
        "idle_timeout_seconds": info.idle_timeout.total_seconds(),
        "max_turns": info.max_turns,
        "state": info.state,
        "labels": info.labels,
        "summary": info.summary,
        "folded_turns": info.folded_turns,
        "turn_count": info.turn_count,
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
        "external_agent": info.external_agent,
        "last_item_sequence": info.last_item_sequence,
        # Items of turns folded meanwhile leave with them, as the summary stands for both.
        "items": [
            {
                "sequence": i.sequence,
                "turn_index": i.turn_index,
                "type": i.type.value,
                "type_name": i.type_name,
                "role": i.role,
                "name": i.name,
                "call_id": i.call_id,
                "item_id": i.item_id,
                "payload_json": i.payload_json,
                "create_time": i.create_time.isoformat() if i.create_time else None,
            }
            for i in items
            if i.turn_index in kept
        ],
    }


def _timestamp(text: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(text))
    return stamp


def import_request(
    record: Mapping[str, Any], user_id: str | None, app: str | None
) -> pb.ImportSessionRequest:
    """The request that re-creates ``record``, owned by ``user_id`` and in ``app`` when given.

    Raises ``KeyError`` or ``ValueError`` for a record that is not one.
    """
    snapshot = pb.SessionSnapshot(
        session_id=record["session_id"],
        user_id=user_id or record["user_id"],
        app=(record.get("app") or "") if app is None else app,
        agent_id=record["agent_id"],
        status="SESSION_STATUS_" + record.get("status", "ACTIVE"),
        max_turns=int(record.get("max_turns", 0)),
        labels=dict(record.get("labels", {})),
        summary=record.get("summary", ""),
        folded_turns=int(record.get("folded_turns", 0)),
        turn_count=int(record.get("turn_count", 0)),
    )
    if record.get("ttl_seconds"):
        snapshot.ttl.CopyFrom(duration(timedelta(seconds=record["ttl_seconds"])))
    if record.get("idle_timeout_seconds"):
        snapshot.idle_timeout.CopyFrom(duration(timedelta(seconds=record["idle_timeout_seconds"])))
    if record.get("state"):
        snapshot.state_json = state_json(record["state"])
    for item in record.get("turns", []):
        message = snapshot.turns.add(
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
    snapshot.external_agent = bool(record.get("external_agent", False))
    snapshot.last_item_sequence = int(record.get("last_item_sequence", 0))
    for entry in record.get("items", []):
        stored = snapshot.items.add(
            sequence=int(entry["sequence"]),
            turn_index=int(entry["turn_index"]),
            type="ITEM_TYPE_" + entry["type"],
            type_name=entry.get("type_name", ""),
            role=entry.get("role", ""),
            name=entry.get("name", ""),
            call_id=entry.get("call_id", ""),
            item_id=entry.get("item_id", ""),
            payload_json=entry["payload_json"],
        )
        if entry.get("create_time"):
            stored.create_time.CopyFrom(_timestamp(entry["create_time"]))
    return pb.ImportSessionRequest(snapshot=snapshot)
