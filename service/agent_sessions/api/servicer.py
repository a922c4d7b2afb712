"""SessionService over grpc.aio: translation only, the logic lives in SessionManager."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import TypeVar

import grpc
from agentsessions.sessions.v1 import sessions_pb2 as pb
from agentsessions.sessions.v1 import sessions_pb2_grpc

from agent_sessions.api import convert
from agent_sessions.api.coalesce import coalesced
from agent_sessions.api.registration import MalformedRequest
from agent_sessions.api.security import current_tenant
from agent_sessions.api.status import to_status
from agent_sessions.errors import InvalidArgument, SessionError
from agent_sessions.sessions import SessionManager
from agent_sessions.wire import item_message, item_of

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")
Event = TypeVar("Event")
Servicer = TypeVar("Servicer", bound="SessionServicer")
Context = grpc.aio.ServicerContext[Request, Response]


def _unary(
    method: Callable[[Servicer, Request, Context[Request, Response]], Awaitable[Response]],
) -> Callable[[Servicer, Request, Context[Request, Response]], Awaitable[Response]]:
    """Turns expected errors into their status; anything else is logged and INTERNAL."""

    @functools.wraps(method)
    async def handler(
        self: Servicer, request: Request, context: Context[Request, Response]
    ) -> Response:
        try:
            _refuse_malformed(request)
            return await method(self, request, context)
        except SessionError as error:
            await context.abort_with_status(to_status(error))  # type: ignore[attr-defined]  # grpc-stubs lag grpc.aio
        except Exception:
            log.exception("unexpected error in %s", method.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        raise AssertionError("abort returns only by raising")

    return handler


def _refuse_malformed(request: object) -> None:
    if isinstance(request, MalformedRequest):
        raise InvalidArgument(
            "request", f"does not decode as {request.message_type}: {request.error}"
        )


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(self, managers: Mapping[str, SessionManager]) -> None:
        """``managers`` by tenant; "" serves calls that name no tenant."""
        self._managers = managers

    @property
    def _manager(self) -> SessionManager:
        return self._managers[current_tenant.get()]

    @_unary
    async def CreateSession(
        self,
        request: pb.CreateSessionRequest,
        context: Context[pb.CreateSessionRequest, pb.Session],
    ) -> pb.Session:
        session = await self._manager.create(**convert.create_arguments(request))
        return convert.session_message(session)

    @_unary
    async def ImportSession(
        self,
        request: pb.ImportSessionRequest,
        context: Context[pb.ImportSessionRequest, pb.Session],
    ) -> pb.Session:
        session = await self._manager.import_session(**convert.import_arguments(request))
        return convert.session_message(session)

    @_unary
    async def GetSession(
        self, request: pb.GetSessionRequest, context: Context[pb.GetSessionRequest, pb.Session]
    ) -> pb.Session:
        session = await self._manager.get(
            app=request.app, user_id=request.user_id, session_id=request.session_id
        )
        return convert.session_message(session)

    @_unary
    async def ListSessions(
        self,
        request: pb.ListSessionsRequest,
        context: Context[pb.ListSessionsRequest, pb.ListSessionsResponse],
    ) -> pb.ListSessionsResponse:
        page = await self._manager.list(
            app=request.app,
            user_id=request.user_id,
            agent_id=request.agent_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListSessionsResponse(
            sessions=[convert.session_message(s) for s in page.sessions],
            next_page_token=page.next_page_token,
        )

    @_unary
    async def UpdateSession(
        self,
        request: pb.UpdateSessionRequest,
        context: Context[pb.UpdateSessionRequest, pb.Session],
    ) -> pb.Session:
        session = await self._manager.update(
            app=request.session.app,
            user_id=request.session.user_id,
            session_id=request.session.session_id,
            patch=convert.session_patch(request),
            etag=request.session.etag,
        )
        return convert.session_message(session)

    @_unary
    async def EndSession(
        self, request: pb.EndSessionRequest, context: Context[pb.EndSessionRequest, pb.Session]
    ) -> pb.Session:
        session = await self._manager.end(
            app=request.app, user_id=request.user_id, session_id=request.session_id
        )
        return convert.session_message(session)

    @_unary
    async def DeleteSession(
        self,
        request: pb.DeleteSessionRequest,
        context: Context[pb.DeleteSessionRequest, pb.DeleteSessionResponse],
    ) -> pb.DeleteSessionResponse:
        await self._manager.delete(
            app=request.app, user_id=request.user_id, session_id=request.session_id
        )
        return pb.DeleteSessionResponse()

    @_unary
    async def ListTurns(
        self,
        request: pb.ListTurnsRequest,
        context: Context[pb.ListTurnsRequest, pb.ListTurnsResponse],
    ) -> pb.ListTurnsResponse:
        page = await self._manager.list_turns(
            app=request.app,
            user_id=request.user_id,
            session_id=request.session_id,
            page_size=request.page_size,
            page_token=request.page_token,
            newest_first=convert.newest_first(request.order_by),
            include_archived=request.include_archived,
            include_items=request.include_items,
        )
        return pb.ListTurnsResponse(
            turns=[convert.turn_message(t) for t in page.turns],
            next_page_token=page.next_page_token,
        )

    @_unary
    async def AppendItems(
        self,
        request: pb.AppendItemsRequest,
        context: Context[pb.AppendItemsRequest, pb.AppendItemsResponse],
    ) -> pb.AppendItemsResponse:
        written = await self._manager.append_items(
            app=request.app,
            user_id=request.user_id,
            session_id=request.session_id,
            items=[item_of(item) for item in request.items],
            state_delta=convert.state_delta(request),
            expected_last_sequence=(
                request.expected_last_sequence
                if request.HasField("expected_last_sequence")
                else None
            ),
            etag=request.etag,
            request_id=request.request_id,
        )
        return pb.AppendItemsResponse(
            items=[item_message(item) for item in written.items],
            session=convert.session_message(written.session),
        )

    @_unary
    async def ReplaceItems(
        self,
        request: pb.ReplaceItemsRequest,
        context: Context[pb.ReplaceItemsRequest, pb.ReplaceItemsResponse],
    ) -> pb.ReplaceItemsResponse:
        written = await self._manager.replace_items(
            app=request.app,
            user_id=request.user_id,
            session_id=request.session_id,
            after_sequence=request.after_sequence,
            items=[item_of(item) for item in request.items],
            expected_last_sequence=(
                request.expected_last_sequence
                if request.HasField("expected_last_sequence")
                else None
            ),
            request_id=request.request_id,
        )
        return pb.ReplaceItemsResponse(
            items=[item_message(item) for item in written.items],
            session=convert.session_message(written.session),
        )

    @_unary
    async def ListItems(
        self,
        request: pb.ListItemsRequest,
        context: Context[pb.ListItemsRequest, pb.ListItemsResponse],
    ) -> pb.ListItemsResponse:
        page = await self._manager.list_items(
            app=request.app,
            user_id=request.user_id,
            session_id=request.session_id,
            page_size=request.page_size,
            page_token=request.page_token,
            newest_first=convert.newest_first(request.order_by, key="sequence"),
            after_sequence=request.after_sequence,
            include_archived=request.include_archived,
        )
        return pb.ListItemsResponse(
            items=[item_message(item) for item in page.items],
            next_page_token=page.next_page_token,
        )

    @_unary
    async def PopItem(
        self,
        request: pb.PopItemRequest,
        context: Context[pb.PopItemRequest, pb.PopItemResponse],
    ) -> pb.PopItemResponse:
        item, session = await self._manager.pop_item(
            app=request.app, user_id=request.user_id, session_id=request.session_id
        )
        response = pb.PopItemResponse(session=convert.session_message(session))
        if item is not None:
            response.item.CopyFrom(item_message(item))
        return response

    @_unary
    async def ClearItems(
        self,
        request: pb.ClearItemsRequest,
        context: Context[pb.ClearItemsRequest, pb.ClearItemsResponse],
    ) -> pb.ClearItemsResponse:
        session = await self._manager.clear_items(
            app=request.app, user_id=request.user_id, session_id=request.session_id
        )
        return pb.ClearItemsResponse(session=convert.session_message(session))

    @_unary
    async def CompressSession(
        self,
        request: pb.CompressSessionRequest,
        context: Context[pb.CompressSessionRequest, pb.CompressSessionResponse],
    ) -> pb.CompressSessionResponse:
        compressed = await self._manager.compress(
            app=request.app,
            user_id=request.user_id,
            session_id=request.session_id,
            keep_last=request.keep_last if request.HasField("keep_last") else None,
        )
        return pb.CompressSessionResponse(
            session=convert.session_message(compressed.session),
            folded_turns=compressed.folded_turns,
            summarizer=compressed.summarizer,
        )

    async def Run(  # type: ignore[override]  # written with context.write, not as a generator
        self, request: pb.RunRequest, context: Context[pb.RunRequest, pb.RunEvent]
    ) -> None:
        try:
            _refuse_malformed(request)
            run = self._manager.run(
                app=request.app,
                user_id=request.user_id,
                session_id=request.session_id,
                text=request.input,
                request_id=request.request_id,
                detach=request.detach,
            )
        except SessionError as error:
            await context.abort_with_status(to_status(error))  # type: ignore[attr-defined]
        await _stream(coalesced(run), convert.run_event, context, "Run")

    async def ResumeRun(  # type: ignore[override]  # written with context.write
        self, request: pb.ResumeRunRequest, context: Context[pb.ResumeRunRequest, pb.RunEvent]
    ) -> None:
        try:
            _refuse_malformed(request)
        except SessionError as error:
            await context.abort_with_status(to_status(error))  # type: ignore[attr-defined]
        events = self._manager.resume(
            app=request.app,
            user_id=request.user_id,
            session_id=request.session_id,
            run_id=request.run_id,
            request_id=request.request_id,
            after_sequence=request.after_sequence,
        )
        await _stream(events, convert.run_event, context, "ResumeRun")

    async def WatchSession(  # type: ignore[override]  # written with context.write
        self,
        request: pb.WatchSessionRequest,
        context: Context[pb.WatchSessionRequest, pb.SessionEvent],
    ) -> None:
        try:
            _refuse_malformed(request)
        except SessionError as error:
            await context.abort_with_status(to_status(error))  # type: ignore[attr-defined]
        events = self._manager.watch(
            app=request.app,
            user_id=request.user_id,
            session_id=request.session_id,
            after_sequence=(request.after_sequence if request.HasField("after_sequence") else None),
        )
        await _stream(events, convert.session_event, context, "WatchSession")


async def _stream(
    events: AsyncGenerator[Event, None],
    message: Callable[[Event], Response],
    context: Context[Request, Response],
    method: str,
) -> None:
    """Writes a server stream's events as messages; its errors end it with their status."""
    try:
        # aclosing: when the caller cancels during a write, a run still learns of it at
        # once and records the turn CANCELLED.
        async with aclosing(events):
            async for event in events:
                await context.write(message(event))
    except SessionError as error:
        await context.abort_with_status(to_status(error))  # type: ignore[attr-defined]  # grpc-stubs lag grpc.aio
    except Exception:
        log.exception("unexpected error in %s", method)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
