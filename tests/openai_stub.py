"""A stand-in OpenAI-compatible server for the tests: real HTTP on loopback, in a thread.

It serves ``POST /v1/chat/completions`` with ``stream: true`` as server-sent events,
and behaves as its mode says. The mode is the request's ``model``, unless a test sets
``OpenAIStub.mode``, which then wins (so one session can fail, then run again):

- ``echo-context``: replies, in several chunks, with what it received:
  ``messages=5 system=<first system message> last=<the new input>
  history=<earlier user messages joined by |>``
- ``usage``: replies "counted", then a chunk with ``usage`` when the request asked
  for it (``stream_options.include_usage``): 11 prompt tokens, 7 completion tokens
- ``slow``: a chunk every 0.2 s for 10 s; ``disconnected`` is set when the client
  goes away before the end
- ``error-500``, ``error-429``, ``error-401``: that status, with an OpenAI-style body
  (the 401 quotes the key it was sent)
- ``malformed``: a good chunk, then an event that is not JSON
- ``not-a-stream``: a plain JSON chat completion, as a server that ignores ``stream``
- ``long``: a reply of 1 MiB in 1 KiB chunks
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_INTERVAL_S = 0.2
SLOW_CHUNKS = 50
LONG_CHUNK = "x" * 1023 + " "
LONG_CHUNKS = 1024
_WORD = re.compile(r"\S+\s*|\s+")
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
_ERRORS = {
    "error-500": (500, "The server had an error while processing your request.", "server_error"),
    "error-429": (429, "Rate limit reached for requests.", "rate_limit_exceeded"),
    "error-401": (401, "Incorrect API key provided: {key}.", "invalid_api_key"),
}


@dataclass(frozen=True)
class Request:
    """One request the stub received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body["messages"]
        return messages


class _Disconnected(Exception):
    """The client closed the connection."""


class OpenAIStub:
    """Start it, point an agent at ``base_url``, stop it."""

    def __init__(self) -> None:
        self.mode: str | None = None
        self.requests: list[Request] = []
        self.disconnected = threading.Event()
        self.disconnect_time: float | None = None
        self.port = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        """Listens on a free port, or on the port it had before (a restart)."""
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops listening: from now on connections to ``base_url`` are refused."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def record_disconnect(self) -> None:
        with self._lock:
            if self.disconnect_time is None:
                self.disconnect_time = time.monotonic()
        self.disconnected.set()


class _Handler(BaseHTTPRequestHandler):
    owner: OpenAIStub
    # Chunked responses, as real servers stream; each closes its connection so that no
    # idle keep-alive connection outlives a test.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the tests' output is not the place for an access log

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.owner.record(request)
        if self.path != "/v1/chat/completions":
            self._json(404, _error(f"Unknown path {self.path}", "not_found"))
            return
        mode = self.owner.mode or str(body.get("model", ""))
        try:
            self._respond(mode, body)
        except _Disconnected:
            self.owner.record_disconnect()

    def _respond(self, mode: str, body: dict[str, Any]) -> None:
        if mode in _ERRORS:
            status, message, code = _ERRORS[mode]
            # Quotes the key it got, as some servers do: the agent must not pass it on.
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            self._json(status, _error(message.format(key=key), code))
            return
        if mode == "not-a-stream":
            self._json(200, _completion("I ignore stream: true"))
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self._start_events()
        if mode == "echo-context":
            for word in _WORD.findall(_echo(body["messages"])):
                self._chunk(word, include_usage)
        elif mode == "usage":
            self._chunk("counted", include_usage)
        elif mode == "slow":
            for tick in range(SLOW_CHUNKS):
                self._chunk(f"tick{tick} ", include_usage)
                self._wait_unless_disconnected(SLOW_INTERVAL_S)
        elif mode == "malformed":
            self._chunk("fine so far ", include_usage)
            self._event(b'{"id": "chatcmpl-stub", "choices": [{"delta": {"content": "bro')
        elif mode == "long":
            for _ in range(LONG_CHUNKS):
                self._chunk(LONG_CHUNK, include_usage)
        else:
            self._chunk(f"unknown stub mode {mode!r}", include_usage)
        self._chunk("", include_usage, finish_reason="stop")
        if include_usage and mode == "usage":
            self._event(json.dumps(_chunk_body(None, usage=USAGE)).encode())
        self._event(b"[DONE]")
        self._write_chunk(b"")

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _start_events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _chunk(self, text: str, include_usage: bool, finish_reason: str | None = None) -> None:
        payload = _chunk_body(text, finish_reason=finish_reason)
        if include_usage:
            payload["usage"] = None  # as OpenAI sends it on every chunk but the last
        self._event(json.dumps(payload).encode())

    def _event(self, data: bytes) -> None:
        self._write_chunk(b"data: " + data + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        except OSError as exc:  # BrokenPipeError, ConnectionResetError
            raise _Disconnected from exc

    def _wait_unless_disconnected(self, seconds: float) -> None:
        """Sleeps, but notices at once when the client closes the connection."""
        readable, _, _ = select.select([self.connection], [], [], seconds)
        if readable:
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except OSError as exc:
                raise _Disconnected from exc
            if not peeked:
                raise _Disconnected


def _echo(messages: list[dict[str, Any]]) -> str:
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    users = [m["content"] for m in messages if m["role"] == "user"]
    return (
        f"messages={len(messages)} system={system} last={users[-1]} history={'|'.join(users[:-1])}"
    )


def _chunk_body(
    text: str | None, *, finish_reason: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    if text is not None:
        delta = {"role": "assistant", "content": text} if text else {}
        choices.append({"index": 0, "delta": delta, "finish_reason": finish_reason})
    body: dict[str, Any] = {
        "id": "chatcmpl-stub",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "stub",
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}
