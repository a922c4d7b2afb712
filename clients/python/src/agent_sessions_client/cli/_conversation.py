"""Talking to an agent: one turn (``run``) or an interactive loop (``chat``)."""

from __future__ import annotations

import argparse
import shlex
import sys
import uuid
from collections.abc import Generator
from contextlib import suppress

from agent_sessions_client import (
    FailedPreconditionError,
    NotFoundError,
    Session,
    SessionClient,
    SessionsError,
    Turn,
)
from agent_sessions_client.cli._commands import app, load
from agent_sessions_client.cli._exit import INVALID_INPUT, OK, CliError, exit_code
from agent_sessions_client.cli._output import Output, turn_json

_QUIT = ("/quit", "/exit")


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
        "/quit or Ctrl-D leaves; Ctrl-C cancels a reply."
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
            _stream_reply(session, text, line_open=True)
        except KeyboardInterrupt:
            out.note("(reply cancelled)")
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
