"""Request messages built from Python arguments, shared by the sync and async clients."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from agentsessions.sessions.v1 import sessions_pb2 as pb
from google.protobuf import field_mask_pb2

from agent_sessions_client._types import duration, state_json


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
    request_id: str | None = None,
) -> pb.CreateSessionRequest:
    request = pb.CreateSessionRequest(
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        labels=labels or {},
        request_id=request_id or "",
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
    etag: str,
    state: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    ttl: timedelta | None,
    idle_timeout: timedelta | None,
    max_turns: int | None,
) -> pb.UpdateSessionRequest:
    session = pb.Session(session_id=session_id, user_id=user_id, etag=etag)
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
        session=session, update_mask=field_mask_pb2.FieldMask(paths=paths)
    )


def run(session_id: str, user_id: str, text: str, request_id: str | None) -> pb.RunRequest:
    # Every run carries a request id, so that the channel may retry it safely: a
    # retry of a turn that already completed replays it instead of running it again.
    return pb.RunRequest(
        session_id=session_id,
        user_id=user_id,
        input=text,
        request_id=request_id or uuid.uuid4().hex,
    )


def list_turns(
    session_id: str,
    user_id: str,
    *,
    newest_first: bool,
    page_size: int,
    page_token: str,
    include_archived: bool = False,
) -> pb.ListTurnsRequest:
    return pb.ListTurnsRequest(
        session_id=session_id,
        user_id=user_id,
        page_size=page_size,
        page_token=page_token,
        order_by="index desc" if newest_first else "index",
        include_archived=include_archived,
    )


def compress(session_id: str, user_id: str, keep_last: int | None) -> pb.CompressSessionRequest:
    # keep_last is optional in the contract: unset means the server's default, 0 folds
    # every finished turn, so None must not become 0.
    request = pb.CompressSessionRequest(session_id=session_id, user_id=user_id)
    if keep_last is not None:
        request.keep_last = keep_last
    return request
