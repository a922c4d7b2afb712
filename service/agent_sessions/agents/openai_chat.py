"""An agent behind an OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama, ...)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncGenerator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from openai import AsyncOpenAI, omit
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCallParam,
)

from agent_sessions.agents.protocol import AgentContext, AgentEvent
from agent_sessions.agents.specs import OpenAISpec
from agent_sessions.agents.summarizer import SummaryRequest
from agent_sessions.errors import AgentError, AgentTimeout, AgentUnavailable
from agent_sessions.model import Item, ItemType, TokenUsage, TurnStatus, text_of

log = logging.getLogger(__name__)

# Local servers (Ollama, llama.cpp, vLLM without --api-key) accept any key, but the
# client insists on one.
PLACEHOLDER_API_KEY = "unused"
# An upstream error can be a whole HTML page from a proxy; the turn keeps its start.
_MAX_REASON_CHARS = 500
SUMMARY_PROMPT = (
    "You maintain the running summary of a conversation between a user and an assistant. "
    "Fold the earlier summary and the turns below into one new summary: keep names, places, "
    "numbers, the user's preferences and decisions, and open questions; drop pleasantries. "
    "Write plain prose, at most {words} words. Answer with the summary only."
)


class OpenAIChatAgent:
    """Streams the reply of a chat model, with the session's context as the conversation.

    The messages are the system prompt, the session's summary (when it has one), each
    turn of the history as a user and an assistant message, then the new input. Upstream
    failures become :class:`AgentUnavailable` (refused, HTTP 429 and 5xx),
    :class:`AgentTimeout` or :class:`AgentError` (other 4xx, a malformed stream), with
    the upstream reason in the message.
    """

    def __init__(self, spec: OpenAISpec, client: AsyncOpenAI, api_key: str) -> None:
        self._spec = spec
        self._client = client
        self._api_key = api_key
        self._where = _without_userinfo(spec.base_url)

    @classmethod
    def from_spec(cls, spec: OpenAISpec) -> OpenAIChatAgent:
        """The agent a spec describes; its HTTP client is made here and reused by every turn.

        The API key is ``api_key``, else the variable ``api_key_env`` names, else a
        placeholder (local servers take any key).
        """
        api_key = ""
        if spec.api_key is not None:
            api_key = spec.api_key.get_secret_value()
        elif spec.api_key_env:
            api_key = os.environ.get(spec.api_key_env, "")
            if not api_key:
                # Not fatal: a local server answers anyway, and one that wants a key
                # fails each turn with its HTTP 401, which names the problem.
                log.warning(
                    "the openai agent for %s takes its API key from $%s, which is not set; "
                    "sending a placeholder key",
                    _without_userinfo(spec.base_url),
                    spec.api_key_env,
                )
        api_key = api_key or PLACEHOLDER_API_KEY
        # Retries belong to the caller, whose Run carries a request id; retrying here
        # would hide failures and could run past the agent's timeout.
        client = AsyncOpenAI(api_key=api_key, base_url=spec.base_url, max_retries=0)
        return cls(spec, client, api_key)

    def stream(self, context: AgentContext, text: str) -> AsyncGenerator[AgentEvent, None]:
        return self._completion(self._messages(context, text))

    async def _completion(
        self, messages: list[ChatCompletionMessageParam]
    ) -> AsyncGenerator[AgentEvent, None]:
        spec = self._spec
        try:
            upstream = await self._client.chat.completions.create(
                model=spec.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                temperature=spec.temperature if spec.temperature is not None else omit,
                max_tokens=spec.max_tokens if spec.max_tokens is not None else omit,
            )
        except openai.OpenAIError as exc:
            raise self._failure(exc) from exc
        usage: TokenUsage | None = None
        chunks = 0
        # Leaving this block by any way (done, failed, closed or cancelled by the run)
        # closes the HTTP response, so no request is left running upstream.
        async with upstream:
            try:
                async for chunk in upstream:
                    chunks += 1
                    content, reported = self._read(chunk)
                    if reported is not None:
                        usage = reported
                    if content:
                        yield content
            except (openai.OpenAIError, ValueError) as exc:
                # ValueError: an event that is not JSON, or a chunk pydantic rejects.
                raise self._failure(exc) from exc
            if not chunks:
                content_type = upstream.response.headers.get("content-type", "no content type")
                raise AgentError(
                    f"malformed stream from {self._where}: no chat completion chunks in the "
                    f"response ({content_type})"
                )
        if usage is not None:
            yield usage

    async def summarize(self, request: SummaryRequest) -> str:
        """The model's summary of the earlier summary and the folded turns (one chat
        completion with :data:`SUMMARY_PROMPT`); fails as :meth:`stream` does."""
        parts: list[str] = []
        async for item in self._completion(self._summary_messages(request)):
            if isinstance(item, str):
                parts.append(item)
        return "".join(parts)

    async def aclose(self) -> None:
        """Closes the HTTP client and its pooled connections; the server does on shutdown."""
        await self._client.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called: no turn can run any more."""
        return self._client.is_closed()

    def _messages(self, context: AgentContext, text: str) -> list[ChatCompletionMessageParam]:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": self._spec.system_prompt}
        ]
        if context.summary:
            messages.append(
                {
                    "role": "system",
                    "content": f"Summary of the conversation so far: {context.summary}",
                }
            )
        for turn in context.history:
            if turn.items:
                messages += _item_messages(turn.items)
            else:
                messages.append({"role": "user", "content": turn.input})
                messages.append({"role": "assistant", "content": turn.output})
        messages.append({"role": "user", "content": text})
        return messages

    @staticmethod
    def _summary_messages(request: SummaryRequest) -> list[ChatCompletionMessageParam]:
        # About 6 bytes a word in English prose: the cut at max_bytes stays rare.
        words = max(request.max_bytes // 6, 20)
        lines = []
        if request.summary:
            lines.append(f"Earlier summary:\n{request.summary}\n")
        lines.append("Turns to fold:")
        for turn in request.turns:
            lines.append(f"[{turn.index}] user: {turn.input}")
            if turn.status is TurnStatus.COMPLETED:
                lines.append(f"[{turn.index}] assistant: {turn.output}")
        return [
            {"role": "system", "content": SUMMARY_PROMPT.format(words=words)},
            {"role": "user", "content": "\n".join(lines)},
        ]

    def _read(self, chunk: object) -> tuple[str, TokenUsage | None]:
        """The text and the usage a chunk carries; AgentError if it is not a chunk at all.

        The client builds chunks without validating them, so a server that sends
        something else (a whole chat completion, a bare string) is caught here.
        """
        if (
            not isinstance(chunk, ChatCompletionChunk)
            or chunk.object not in ("chat.completion.chunk", None)
            or not isinstance(chunk.choices, list)
        ):
            raise AgentError(
                f"malformed stream from {self._where}: an event is not a chat completion "
                f"chunk: {self._redact(repr(chunk))[:_MAX_REASON_CHARS]}"
            )
        parts: list[str] = []
        for choice in chunk.choices:
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if delta is None or not isinstance(content, str | None):
                raise AgentError(
                    f"malformed stream from {self._where}: a choice without a text delta: "
                    f"{self._redact(repr(choice))[:_MAX_REASON_CHARS]}"
                )
            # n is never asked for, so every choice is choice 0; the check keeps a
            # server that sends more from mixing replies.
            if content and choice.index in (0, None):
                parts.append(content)
        usage = None
        if chunk.usage is not None:
            usage = TokenUsage(
                _tokens(chunk.usage.prompt_tokens), _tokens(chunk.usage.completion_tokens)
            )
        return "".join(parts), usage

    def _failure(self, error: openai.OpenAIError | ValueError) -> AgentError:
        where = self._where
        # Subclass first: a timeout is also a connection error.
        if isinstance(error, openai.APITimeoutError):
            return AgentTimeout(f"{where} did not answer in time: {self._cause(error)}")
        if isinstance(error, openai.APIConnectionError):
            return AgentUnavailable(f"cannot reach {where}: {self._cause(error)}")
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            message = f"HTTP {status} from {where}: {self._upstream_message(error)}"
            if status == 429 or status >= 500:
                return AgentUnavailable(message)
            return AgentError(message)
        if isinstance(error, openai.APIError):
            # An error event in the middle of a stream that had begun well.
            return AgentError(f"error event in the stream from {where}: {self._reason(error)}")
        if isinstance(error, ValueError):
            return AgentError(f"malformed stream from {where}: {self._reason(error)}")
        return AgentError(f"{where} failed: {type(error).__name__}: {self._reason(error)}")

    def _upstream_message(self, error: openai.APIStatusError) -> str:
        # The client keeps OpenAI's {"error": {"message": ...}} as the error's body.
        body = error.body
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return self._reason(body["message"])
        if isinstance(body, str) and body.strip():
            return self._reason(body)
        return self._reason(error.message)

    def _cause(self, error: openai.APIError) -> str:
        # "Connection error." says little: the transport's exception says what happened,
        # and the socket's error beneath it why (refused, a name that does not resolve).
        chain: list[BaseException] = []
        link = error.__cause__ or error.__context__
        while link is not None and len(chain) < 10:
            chain.append(link)
            link = link.__cause__ or link.__context__
        if not chain:
            return self._reason(error.message)
        reason = f"{type(chain[0]).__name__}: {chain[0]}"
        socket_errors = [e for e in chain if isinstance(e, OSError) and e.errno is not None]
        if socket_errors and socket_errors[-1] is not chain[0]:
            reason += f" ({type(socket_errors[-1]).__name__}: {socket_errors[-1]})"
        return self._reason(reason)

    def _reason(self, reason: object) -> str:
        return self._redact(" ".join(str(reason).split()))[:_MAX_REASON_CHARS]

    def _redact(self, text: str) -> str:
        # Some servers quote the key they rejected.
        if self._api_key and self._api_key != PLACEHOLDER_API_KEY:
            text = text.replace(self._api_key, "[api key]")
        return text


def _tokens(count: object) -> int:
    # Unvalidated like the rest of the chunk: a server may send null or worse.
    return count if isinstance(count, int) and count >= 0 else 0


def _without_userinfo(url: str) -> str:
    """The URL without any user:password part, so that messages never carry credentials."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _item_messages(items: Sequence[Item]) -> list[ChatCompletionMessageParam]:
    """A turn's items in the shape chat completions take: messages as messages, tool
    calls as an assistant message's ``tool_calls``, each result as a ``tool`` message
    after them. A call without its result, or a result without its call, is left out:
    the API refuses either alone."""
    results = {i.call_id for i in items if i.type is ItemType.TOOL_RESULT and i.call_id}
    calls = {i.call_id for i in items if i.type is ItemType.TOOL_CALL and i.call_id}
    paired = results & calls
    messages: list[ChatCompletionMessageParam] = []
    pending: list[ChatCompletionMessageToolCallParam] = []
    for item in items:
        if item.type is ItemType.TOOL_CALL and item.call_id in paired:
            pending.append(_tool_call(item))
            continue
        if pending:
            messages.append({"role": "assistant", "content": None, "tool_calls": pending})
            pending = []
        if item.type is ItemType.TOOL_RESULT and item.call_id in paired:
            messages.append(
                {"role": "tool", "tool_call_id": item.call_id, "content": _tool_output(item)}
            )
        elif item.type is ItemType.MESSAGE and item.role == "user":
            messages.append({"role": "user", "content": text_of(item.payload_json)})
        elif item.type is ItemType.MESSAGE and item.role == "system":
            messages.append({"role": "system", "content": text_of(item.payload_json)})
        elif item.type is ItemType.MESSAGE:
            messages.append({"role": "assistant", "content": text_of(item.payload_json)})
    if pending:
        messages.append({"role": "assistant", "content": None, "tool_calls": pending})
    return messages


def _payload(item: Item) -> dict[str, Any]:
    value = json.loads(item.payload_json)
    return value if isinstance(value, dict) else {}


def _tool_call(item: Item) -> ChatCompletionMessageToolCallParam:
    payload = _payload(item)
    arguments = payload.get("arguments", {})
    return {
        "id": item.call_id,
        "type": "function",
        "function": {
            "name": item.name or str(payload.get("name", "")),
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }


def _tool_output(item: Item) -> str:
    output = _payload(item).get("output", item.payload_json)
    return output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
