"""Request messages built from Python arguments, shared by the sync and async clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import field_mask_pb2

from agent_sessions_client._types import Item, duration, item_message, state_json


def create(
    *,
    user_id: str,
    agent_id: str,
    session_id: str,
    ttl: timedelta | None,
    idle_timeout: timedelta | None,
    max_turns: int | None,
    state: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    app: str,
    request_id: str | None = None,
    external_agent: bool = False,
) -> pb.CreateSessionRequest:
    request = pb.CreateSessionRequest(
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        labels=labels or {},
        request_id=request_id or "",
        external_agent=external_agent,
        app=app,
    )
    if ttl is not None:
        request.ttl.CopyFrom(duration(ttl))
    if idle_timeout is not None:
        request.idle_timeout.CopyFrom(duration(idle_timeout))
    if max_turns is not None:
        request.max_turns = max_turns
    if state:
        request.state_json = state_json(state)
    return request


def update(
    *,
    session_id: str,
    user_id: str,
    app: str,
    etag: str,
    state: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    ttl: timedelta | None,
    idle_timeout: timedelta | None,
    max_turns: int | None,
    remove: Iterable[str] = (),
) -> pb.UpdateSessionRequest:
    # The session is named by its id, user and app; only the masked fields are written.
    if isinstance(remove, str):
        raise TypeError("remove takes a list of state keys, not one string")
    session = pb.Session(session_id=session_id, user_id=user_id, app=app, etag=etag)
    paths = []
    if state is not None:
        session.state_json = state_json(state)
        paths.append("state_json")
    if labels is not None:
        session.labels.update(labels)
        paths.append("labels")
    if ttl is not None:
        session.ttl.CopyFrom(duration(ttl))
        paths.append("ttl")
    if idle_timeout is not None:
        session.idle_timeout.CopyFrom(duration(idle_timeout))
        paths.append("idle_timeout")
    if max_turns is not None:
        session.max_turns = max_turns
        paths.append("max_turns")
    if not paths:
        raise ValueError("update needs at least one of state, labels, ttl, idle_timeout, max_turns")
    return pb.UpdateSessionRequest(
        session=session,
        update_mask=field_mask_pb2.FieldMask(paths=paths),
        state_removals=list(remove),
    )


def run(
    session_id: str,
    user_id: str,
    text: str,
    request_id: str | None,
    *,
    app: str,
    detach: bool = False,
) -> pb.RunRequest:
    # Every run carries a request id, so that the channel may retry it safely: a
    # retry of a turn that already completed replays it instead of running it again
    # (and a retry of a detached run still in progress attaches to it).
    return pb.RunRequest(
        session_id=session_id,
        user_id=user_id,
        input=text,
        request_id=request_id or uuid.uuid4().hex,
        app=app,
        detach=detach,
    )


def resume_run(
    session_id: str,
    user_id: str,
    *,
    app: str,
    run_id: str,
    request_id: str,
    after_sequence: int,
) -> pb.ResumeRunRequest:
    # The run is named by one of its two ids: the contract's oneof takes no more.
    if bool(run_id) == bool(request_id):
        raise ValueError("resume takes a run_id or a request_id (one of them)")
    if after_sequence < 0:
        raise ValueError(f"after_sequence must not be negative, got {after_sequence}")
    request = pb.ResumeRunRequest(
        session_id=session_id, user_id=user_id, app=app, after_sequence=after_sequence
    )
    if run_id:
        request.run_id = run_id
    else:
        request.request_id = request_id
    return request


def watch(
    session_id: str, user_id: str, *, app: str, after_sequence: int | None
) -> pb.WatchSessionRequest:
    # after_sequence is optional in the contract: unset means live events only, while
    # 0 means every event the server still holds, so None must not become 0.
    request = pb.WatchSessionRequest(session_id=session_id, user_id=user_id, app=app)
    if after_sequence is not None:
        if after_sequence < 0:
            raise ValueError(f"after_sequence must not be negative, got {after_sequence}")
        request.after_sequence = after_sequence
    return request


def list_turns(
    session_id: str,
    user_id: str,
    *,
    app: str,
    newest_first: bool,
    page_size: int,
    page_token: str,
    include_archived: bool = False,
) -> pb.ListTurnsRequest:
    return pb.ListTurnsRequest(
        session_id=session_id,
        user_id=user_id,
        app=app,
        page_size=page_size,
        page_token=page_token,
        order_by="index desc" if newest_first else "index",
        include_archived=include_archived,
    )


def compress(
    session_id: str, user_id: str, keep_last: int | None, *, app: str
) -> pb.CompressSessionRequest:
    # keep_last is optional in the contract: unset means the server's default, 0 folds
    # every finished turn, so None must not become 0.
    request = pb.CompressSessionRequest(session_id=session_id, user_id=user_id, app=app)
    if keep_last is not None:
        request.keep_last = keep_last
    return request


def _item_messages(items: Iterable[Item]) -> list[pb.Item]:
    if isinstance(items, Item):
        raise TypeError("items takes a list of Item, not one Item")
    return [item_message(item) for item in items]


def append_items(
    session_id: str,
    user_id: str,
    items: Iterable[Item],
    *,
    app: str,
    state: Mapping[str, Any] | None,
    remove: Iterable[str],
    expected_last_sequence: int | None,
    etag: str,
    request_id: str | None,
) -> pb.AppendItemsRequest:
    # Like a run, every append carries a request id, so that the channel may retry it
    # safely: a retry of an append that went through returns its items again.
    if isinstance(remove, str):
        raise TypeError("remove takes a list of state keys, not one string")
    request = pb.AppendItemsRequest(
        session_id=session_id,
        user_id=user_id,
        app=app,
        items=_item_messages(items),
        state_removals=list(remove),
        etag=etag,
        request_id=request_id or uuid.uuid4().hex,
    )
    if state:
        request.state_delta_json = state_json(state)
    if expected_last_sequence is not None:  # 0 is a condition too: no item yet
        request.expected_last_sequence = expected_last_sequence
    return request


def replace_items(
    session_id: str,
    user_id: str,
    after_sequence: int,
    items: Iterable[Item],
    *,
    app: str,
    expected_last_sequence: int | None,
    request_id: str | None,
) -> pb.ReplaceItemsRequest:
    request = pb.ReplaceItemsRequest(
        session_id=session_id,
        user_id=user_id,
        app=app,
        after_sequence=after_sequence,
        items=_item_messages(items),
        request_id=request_id or uuid.uuid4().hex,
    )
    if expected_last_sequence is not None:
        request.expected_last_sequence = expected_last_sequence
    return request


def list_items(
    session_id: str,
    user_id: str,
    *,
    app: str,
    newest_first: bool,
    after_sequence: int,
    page_size: int,
    page_token: str,
) -> pb.ListItemsRequest:
    return pb.ListItemsRequest(
        session_id=session_id,
        user_id=user_id,
        app=app,
        page_size=page_size,
        page_token=page_token,
        order_by="sequence desc" if newest_first else "sequence",
        after_sequence=after_sequence,
    )
