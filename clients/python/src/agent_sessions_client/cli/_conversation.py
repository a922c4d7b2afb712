"""Talking to an agent: one turn (``run``) or an interactive loop (``chat``)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from contextlib import suppress

import grpc

from agent_sessions_client import (
    FailedPreconditionError,
    NotFoundError,
    RunEvent,
    Session,
    SessionClient,
    SessionsError,
    Turn,
    TurnStatus,
    UnavailableError,
)
from agent_sessions_client.cli._commands import app, load
from agent_sessions_client.cli._exit import INVALID_INPUT, OK, CliError, exit_code
from agent_sessions_client.cli._output import Output, turn_json

_QUIT = ("/quit", "/exit")
# The waits before resuming a reply whose stream broke; the count starts again with
# every event received.
RESUME_DELAYS = (0.5, 1.0, 2.0, 4.0)
# The failures that break a stream rather than end a run: the connection dropped or
# the call was cut, and the server gave no reason (a run that failed names its own).
_BROKEN = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


def run_turn(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    text = args.text if args.text is not None else _read_stdin(out)
    session = load(client, args)
    # A request id of our own, so that --json can find the turn this run stored.
    request_id = args.request_id or uuid.uuid4().hex
    if out.as_json:
        session.run(text, request_id=request_id)
        out.json(turn_json(_turn_with(session, request_id)))
    else:
        _stream_reply(session, text, request_id=request_id)
    return OK


def chat(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    """The conversation goes on after a failed turn, but its exit code is then the first
    failure's, as if that turn had been a `sessionctl run`."""
    session = _chat_session(client, args)
    interactive = sys.stdin.isatty()
    if interactive:
        _enable_line_editing()
    info = session.info
    out.note(
        f"Session {info.session_id} with agent {info.agent_id}, {info.turn_count} turn(s) so far. "
        "/quit or Ctrl-D leaves; Ctrl-C stops showing a reply."
    )
    first_failure = OK
    while True:
        try:
            line = input("you> ")
        except EOFError:
            sys.stdout.write("\n")  # after the prompt that found no more input
            break
        if not interactive:
            # Piped input is not echoed by a terminal: echo it, so the transcript reads
            # like the conversation it was.
            sys.stdout.write(line + "\n")
        text = line.strip()
        if text in _QUIT:
            break
        if not text:
            continue
        sys.stdout.write("agent> ")
        sys.stdout.flush()
        try:
            _chat_reply(session, text, out)
        except KeyboardInterrupt:
            # The run is detached: it goes on without us, and its turn is stored.
            out.note("(reply no longer shown; the agent finishes it, and it is kept)")
        except (FailedPreconditionError, NotFoundError):
            raise  # the session takes no more turns: leaving is all that is left
        except SessionsError as error:
            out.failure(error)
            first_failure = first_failure or exit_code(error)
    out.note(f"Resume with: {_resume_command(args, info.user_id, info.session_id, info.app)}")
    return first_failure


def _resume_command(args: argparse.Namespace, user_id: str, session_id: str, app: str) -> str:
    """The command line that resumes the chat, with the session's app and the connection
    options it was given, quoted for a POSIX shell (the token is left to $SESSIONS_TOKEN:
    it is a secret)."""
    words = ["sessionctl", "chat", "--user", user_id, session_id]
    if app:
        words += ["--app", app]
    if args.address:
        words += ["--address", args.address]
    if args.tls:
        words.append("--tls")
    if args.ca_file:
        words += ["--ca-file", args.ca_file]
    return shlex.join(words)


def _chat_session(client: SessionClient, args: argparse.Namespace) -> Session:
    if args.session and args.agent:
        return client.load_or_create_session(
            user_id=args.user, agent_id=args.agent, session_id=args.session, app=app(args)
        )
    if args.session:
        return load(client, args)
    if args.agent:
        return client.create_session(user_id=args.user, agent_id=args.agent, app=app(args))
    raise CliError("chat needs a SESSION to resume or --agent to start one", INVALID_INPUT)


def _stream_reply(
    session: Session, text: str, *, request_id: str | None = None, line_open: bool = False
) -> None:
    # The reply goes to stdout as it arrives; the line ends also when the turn fails.
    wrote = line_open
    chunks = session.stream(text, request_id=request_id)
    try:
        for chunk in chunks:
            sys.stdout.write(chunk)
            sys.stdout.flush()
            wrote = True
    except BaseException:
        if wrote:
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise
    finally:
        # Closing the stream early (Ctrl-C between two chunks) cancels the run now,
        # rather than whenever the traceback lets go of it.
        if isinstance(chunks, Generator):
            chunks.close()
    sys.stdout.write("\n")
    sys.stdout.flush()


def _chat_reply(session: Session, text: str, out: Output) -> None:
    """Runs one turn of a chat, printing its reply as it comes after an open ``agent> ``.

    The run is detached and has a request id of its own: when its stream breaks (the
    connection dropped, the call was cut), the reply is resumed after the last event
    received, a few times with backoff, so that it goes on where it stopped without
    asking the agent twice. A reply that cannot be resumed raises ``UnavailableError``
    saying so.
    """
    request_id = uuid.uuid4().hex
    reply = _Reply()
    failures = 0
    try:
        while True:
            resuming = failures > 0 and reply.sequence > 0
            if failures and not reply.sequence and reply.shown:
                # Text without sequence numbers: a server without detached runs, and
                # asking again would run the agent again.
                raise UnavailableError(
                    "the connection dropped mid-reply, and this server cannot resume a reply",
                    code=grpc.StatusCode.UNAVAILABLE,
                )
            events: Iterator[RunEvent] | None = None
            try:
                events = _events(session, text, request_id, reply, resuming=resuming)
                for event in events:
                    reply.take(event)
                    failures = 0
                    if event.kind == "completed":
                        return
                problem = "the reply stopped before its end"
            except NotFoundError:
                if not resuming:
                    raise  # the session is gone
                # The server no longer holds the run's events: its turn holds the reply.
                _finish_from_turn(session, request_id, reply)
                return
            except SessionsError as error:
                if error.reason or error.code not in _BROKEN:
                    raise  # the run's own failure, as `run` would report it
                problem = error.message
            finally:
                if events is not None:
                    _close(events)
            if failures >= len(RESUME_DELAYS):
                raise _not_resumed(session, request_id, problem, failures)
            delay = RESUME_DELAYS[failures]
            if failures:
                out.note(f"(resuming failed: {problem}; trying again in {delay:g}s)")
            else:
                out.note(f"(connection lost: {problem}; resuming the reply in {delay:g}s)")
            failures += 1
            time.sleep(delay)
    finally:
        sys.stdout.write("\n")  # the reply's line ends, also when the turn failed
        sys.stdout.flush()


def _events(
    session: Session, text: str, request_id: str, reply: _Reply, *, resuming: bool
) -> Iterator[RunEvent]:
    """The run's events: those after the last one received when ``resuming``, else the
    run's own. Before any event with a sequence number the run may never have reached
    the server, and the same Run again is safe: its request id makes the server attach
    to the run if it is going, replay its turn if it is done, or run it once if it never
    started."""
    if resuming:
        return session.resume(request_id=request_id, after_sequence=reply.sequence)
    return session.stream_events(text, request_id=request_id, detach=True)


class _Reply:
    """What a chat has shown of a reply: its text, and the last event's number."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.sequence = 0

    def take(self, event: RunEvent) -> None:
        if event.sequence:
            self.sequence = event.sequence
        if event.kind == "delta":
            self.write(event.text)

    def write(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self.shown.append(text)


def _finish_from_turn(session: Session, request_id: str, reply: _Reply) -> None:
    """Shows the rest of a reply from its stored turn."""
    try:
        turn = _turn_with(session, request_id)
    except CliError:
        raise UnavailableError(
            "the connection dropped mid-reply and the server no longer knows the run "
            f"(request id {request_id}): the reply could not be resumed",
            code=grpc.StatusCode.UNAVAILABLE,
        ) from None
    if turn.status is not TurnStatus.COMPLETED:
        raise SessionsError(
            f"turn {turn.index} {turn.status.value.lower()}: {turn.error or 'no reply'}"
        )
    shown = "".join(reply.shown)
    if turn.output.startswith(shown):
        reply.write(turn.output[len(shown) :])
    else:  # not what was shown: the reply as stored, on a line of its own
        reply.write("\n" + turn.output)


def _not_resumed(session: Session, request_id: str, problem: str, attempts: int) -> SessionsError:
    turns = ["sessionctl", "turns", "--user", session.user_id, session.session_id]
    if session.app:
        turns += ["--app", session.app]
    return UnavailableError(
        f"the connection dropped mid-reply and the reply could not be resumed after "
        f"{attempts} attempt(s) ({problem}); the agent may still finish it (request id "
        f"{request_id}): see `{shlex.join(turns)}`",
        code=grpc.StatusCode.UNAVAILABLE,
    )


def _close(events: Iterator[RunEvent]) -> None:
    # Closing a run's stream early cancels the call now, not when it is collected (a
    # detached run goes on).
    if isinstance(events, Generator):
        events.close()


def _turn_with(session: Session, request_id: str) -> Turn:
    # Newest first: the turn just run is on the first page, unless the run replayed an
    # older turn with the same request id.
    for turn in session.turns(newest_first=True):
        if turn.request_id == request_id:
            return turn
    raise CliError(f"the history holds no turn with request id {request_id!r}")


def _read_stdin(out: Output) -> str:
    if sys.stdin.isatty():
        out.note("Reading the input from stdin; end it with Ctrl-D.")
    text = sys.stdin.read()
    # `echo hi | sessionctl run` means "hi": the newline ends the line, it is no input.
    return text.removesuffix("\n").removesuffix("\r")


def _enable_line_editing() -> None:
    with suppress(ImportError):  # readline is not built on every platform
        import readline  # noqa: F401  # importing it gives input() history and editing
