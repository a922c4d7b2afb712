"""An agent that runs as a service of its own, in any language, behind AgentService.

Each turn is one ``Generate`` call: the session's context and the input go out in
the request, and the streamed responses come back as the agent protocol's events
(text, state changes, token usage). The session logic applies the agent's timeout
and reply size limit and records the turn; this module only translates, and turns
the call's failure status into the error that says which status the caller gets.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncGenerator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from agentsessions.agents.v1 import agents_pb2 as pb
from agentsessions.agents.v1 import agents_pb2_grpc

from agent_sessions import state_json
from agent_sessions.agents.protocol import AgentContext, AgentEvent
from agent_sessions.agents.specs import GrpcSpec
from agent_sessions.agents.summarizer import SummaryRequest
from agent_sessions.errors import AgentError, AgentTimeout, AgentUnavailable
from agent_sessions.model import StateDelta, TokenUsage, TurnStatus
from agent_sessions.wire import item_message, item_of

log = logging.getLogger(__name__)

# gRPC's default limit on a received message. A single text delta never needs more
# than the reply limit allows, so the limit grows with it, with room for the other
# fields and for a state update sent in the same stream.
_DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024
_RECEIVE_SLACK_BYTES = 1024 * 1024
# gRPC backs off up to 120 s between attempts to reach a service that was down, and
# fails calls at once while it waits: an agent service back after a restart should
# answer within seconds, not minutes.
_MAX_RECONNECT_BACKOFF_MS = 5_000


class RemoteAgent:
    """Answers turns by calling ``agentsessions.agents.v1.AgentService/Generate`` at ``target``.

    One channel serves every turn (gRPC multiplexes the calls over one connection);
    it is opened on first use, so that it belongs to the event loop that runs the
    turns, and :meth:`aclose` closes it.
    """

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: timedelta | None = None,
        max_receive_bytes: int = _DEFAULT_RECEIVE_BYTES,
    ) -> None:
        """An agent at ``target`` (host:port), over TLS when ``credentials`` are given.

        ``timeout`` is sent as the call's deadline so that the agent service knows how
        long it has; the session logic enforces it either way.
        """
        self.target = target
        self._credentials = credentials
        self._timeout_s = timeout.total_seconds() if timeout else None
        self._options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_reconnect_backoff_ms", _MAX_RECONNECT_BACKOFF_MS),
        ]
        self._channel: grpc.aio.Channel | None = None
        self._stub: agents_pb2_grpc.AgentServiceAsyncStub | None = None

    @classmethod
    def from_spec(cls, spec: GrpcSpec) -> RemoteAgent:
        """The agent an agents-table entry of kind ``grpc`` describes."""
        credentials = grpc.ssl_channel_credentials(_system_roots()) if spec.tls else None
        return cls(
            spec.target,
            credentials=credentials,
            timeout=spec.timeout,
            max_receive_bytes=max(
                _DEFAULT_RECEIVE_BYTES, spec.max_reply_bytes + _RECEIVE_SLACK_BYTES
            ),
        )

    async def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        """Yields the reply's text, state changes and usage as the agent service sends them.

        Raises :class:`AgentUnavailable`, :class:`AgentTimeout` or :class:`AgentError`
        with the agent service's status and message when the call fails.
        """
        call = self._agent().Generate(_request(context, text), timeout=self._timeout_s)
        try:
            async for response in call:
                event = _event(response)
                if event is not None:
                    yield event
        except grpc.aio.AioRpcError as error:
            raise _failure(self.target, error) from error
        finally:
            # The run closes this generator when its caller goes away or its timeout
            # passes; cancelling the call tells the agent service at once, so it stops
            # spending tokens on a reply nobody will read. A finished call ignores it.
            call.cancel()

    async def summarize(self, request: SummaryRequest) -> str:
        """The agent service's ``Summarize`` answer; an agent service that does not
        implement it (UNIMPLEMENTED) fails like any other, and the session falls back
        to the extractive summarizer."""
        try:
            response = await self._agent().Summarize(
                pb.SummarizeRequest(
                    session_id=request.session_id,
                    user_id=request.user_id,
                    agent_id=request.agent_id,
                    summary=request.summary,
                    turns=[
                        pb.Exchange(
                            index=turn.index,
                            input=turn.input,
                            output=turn.output if turn.status is TurnStatus.COMPLETED else "",
                        )
                        for turn in request.turns
                    ],
                    max_bytes=request.max_bytes,
                ),
                timeout=self._timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            raise _failure(self.target, error) from error
        summary: str = response.summary
        return summary

    async def aclose(self) -> None:
        """Closes the channel; calls still running are cancelled."""
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close(None)

    def _agent(self) -> agents_pb2_grpc.AgentServiceAsyncStub:
        if self._stub is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, options=self._options
                )
            self._stub = agents_pb2_grpc.AgentServiceStub(self._channel)
        return self._stub


def _request(context: AgentContext, text: str) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        session_id=context.session_id,
        user_id=context.user_id,
        agent_id=context.agent_id,
        turn_index=context.turn_index,
        state_json=state_json.dump(dict(context.state)),
        summary=context.summary,
        history=[
            pb.Exchange(
                index=turn.index,
                input=turn.input,
                output=turn.output,
                items=[item_message(item) for item in turn.items],
            )
            for turn in context.history
        ],
        input=text,
    )


def _event(response: pb.GenerateResponse) -> AgentEvent | None:
    kind = response.WhichOneof("event")
    if kind == "text":
        return response.text.text
    if kind == "state_update":
        update = response.state_update
        try:
            values = state_json.parse_object(update.set_json, field="state_update.set_json")
        except state_json.StateJsonError as error:
            raise AgentError(f"the agent service sent a bad state update: {error}") from None
        return StateDelta(set=values, delete=frozenset(update.delete))
    if kind == "item":
        return item_of(response.item)
    if kind == "usage":
        usage = response.usage
        if usage.input_tokens < 0 or usage.output_tokens < 0:
            raise AgentError(
                f"the agent service sent negative token counts ({usage.input_tokens} in, "
                f"{usage.output_tokens} out)"
            )
        return TokenUsage(usage.input_tokens, usage.output_tokens)
    # An event this contract version does not know (an agent built against a newer
    # agents.proto): skipping it keeps adding events a compatible change.
    log.debug("skipping an unknown Generate event from the agent service")
    return None


def _failure(target: str, error: grpc.aio.AioRpcError) -> AgentError:
    code = error.code()
    message = f"agent service at {target} answered {code.name}: {error.details() or ''}"
    if code is grpc.StatusCode.UNAVAILABLE:
        return AgentUnavailable(message)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return AgentTimeout(message)
    return AgentError(message)


def _system_roots() -> bytes | None:
    """The system's CA bundle, or None for gRPC's own roots when there is none.

    gRPC trusts a bundle of its own by default; the system's is the one operators
    keep up to date and add their private CAs to.
    """
    cafile = ssl.get_default_verify_paths().cafile
    return Path(cafile).read_bytes() if cafile else None
