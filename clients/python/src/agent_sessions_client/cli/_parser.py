"""The command line: global options, one subcommand per operation, and their handlers."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from agent_sessions_client import SessionClient
from agent_sessions_client.cli import _commands, _conversation, _transfer, _values, _watch
from agent_sessions_client.cli._exit import EPILOG, UsageError
from agent_sessions_client.cli._output import Output

Handler = Callable[[SessionClient, argparse.Namespace, Output], int]

DESCRIPTION = """\
Operate the agent session service: create, inspect, list, end and delete sessions,
run turns or chat with their agent, compress their history, and export or import
sessions as JSON Lines.
Output is a table for people, or JSON (one object, or one per line for lists) with --json.
"""


class Parser(argparse.ArgumentParser):
    """An argument parser that raises ``UsageError`` instead of printing and exiting,
    so that the error can be shown as JSON with ``--json``; so do its subparsers, which
    argparse makes of the same class."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)


GLOBAL_OPTIONS_NOTE = (
    "The options of `sessionctl --help` (--address, --app, --json, ...) work here too."
)


def _add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    # The same options are accepted after the subcommand too (`sessionctl get ... --json`).
    # There they default to SUPPRESS so as not to overwrite what came before the
    # subcommand, and stay out of its help, which would drown in them.
    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    def described(text: str) -> str:
        return text if top_level else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output") if top_level else parser
    group.add_argument(
        "--address",
        metavar="HOST:PORT",
        type=_values.address,
        default=default(None),
        help=described(
            "the server: HOST:PORT, [IPV6]:PORT or unix:PATH "
            "(default: $SESSIONS_ADDRESS, else 127.0.0.1:50051)"
        ),
    )
    group.add_argument(
        "--app",
        metavar="APP",
        type=_values.app,
        default=default(None),
        help=described(
            "the application whose sessions to work on; apps keep their sessions apart "
            '(default: $SESSIONS_APP, else "", the default app)'
        ),
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help=described(
            "print JSON for scripts: an object, or one per line for lists; errors as "
            '{"error": {"code", "reason", "message", "metadata"}} on stderr'
        ),
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_values.seconds,
        default=default(None),
        help=described("deadline of each call (default: 10; 300 for a turn)"),
    )
    group.add_argument(
        "--token",
        default=default(None),
        help=described("bearer token for every call (default: $SESSIONS_TOKEN, kept out of `ps`)"),
    )
    group.add_argument(
        "--tls",
        action="store_true",
        default=default(False),
        help=described("connect with TLS"),
    )
    group.add_argument(
        "--ca-file",
        metavar="PATH",
        default=default(None),
        help=described(
            "with --tls, trust the CA certificates in this PEM file instead of the system's "
            "(default: $SESSIONS_CA_FILE)"
        ),
    )


def _command(
    commands: argparse._SubParsersAction[Parser],
    name: str,
    handler: Handler,
    summary: str,
    *,
    user: bool = True,
    session: str | None = "the session's id",
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=summary, epilog=GLOBAL_OPTIONS_NOTE
    )
    _add_global_options(parser, top_level=False)
    if user:
        parser.add_argument(
            "--user", metavar="USER_ID", required=True, help="the user who owns the session(s)"
        )
    if session:
        parser.add_argument("session", metavar="SESSION", help=session)
    parser.set_defaults(handler=handler)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``sessionctl`` argument parser."""
    parser = Parser(
        prog="sessionctl",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_global_options(parser, top_level=True)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    create = _command(commands, "create", _commands.create, "create a session", session=None)
    create.add_argument("--agent", metavar="AGENT_ID", required=True, help="the agent to talk to")
    create.add_argument("--session-id", metavar="ID", help="choose the id (default: generated)")
    create.add_argument(
        "--ttl",
        metavar="DURATION",
        type=_values.duration,
        help="longest life, e.g. 48h or 2d (server default: 24h)",
    )
    create.add_argument(
        "--idle-timeout",
        metavar="DURATION",
        type=_values.duration,
        help="life without activity, e.g. 30m (server default: 30m)",
    )
    create.add_argument(
        "--max-turns", metavar="N", type=_values.count, help="completed turns allowed; 0: no limit"
    )
    create.add_argument(
        "--state", metavar="JSON", type=_values.json_object, help="initial state, e.g. '{\"a\": 1}'"
    )
    create.add_argument(
        "--label",
        metavar="KEY=VALUE",
        type=_values.label,
        action="extend",
        nargs="+",
        help="a label (repeatable)",
    )

    _command(commands, "get", _commands.get, "show a session (without its history)")

    listing = _command(
        commands,
        "list",
        _commands.list_sessions,
        "list a user's live sessions, most recently active first",
        session=None,
    )
    listing.add_argument("--agent", metavar="AGENT_ID", help="only the sessions with this agent")
    listing.add_argument(
        "--page-size", metavar="N", type=_values.positive, help="sessions fetched per call"
    )
    listing.add_argument("--limit", metavar="N", type=_values.positive, help="show at most N")

    run = _command(
        commands, "run", _conversation.run_turn, "run one turn, streaming the reply to stdout"
    )
    run.add_argument("text", metavar="TEXT", nargs="?", help="the input (default: read stdin)")
    run.add_argument(
        "--request-id", metavar="ID", help="idempotency key: a completed repeat is replayed"
    )

    chat = _command(
        commands,
        "chat",
        _conversation.chat,
        "chat interactively: resume SESSION or start one with --agent",
        session=None,
    )
    chat.add_argument("session", metavar="SESSION", nargs="?", help="the session to resume")
    chat.add_argument(
        "--agent", metavar="AGENT_ID", help="start a session with this agent (or create SESSION)"
    )

    turns = _command(commands, "turns", _commands.turns, "list a session's turns, oldest first")
    turns.add_argument("--newest-first", action="store_true", help="newest turns first")
    turns.add_argument("--limit", metavar="N", type=_values.positive, help="show at most N")
    turns.add_argument(
        "--full", action="store_true", help="show whole replies, not their first line's worth"
    )

    items = _command(
        commands, "items", _commands.items, "list a session's items (messages, tool calls...)"
    )
    items.add_argument("--last", metavar="N", type=_values.positive, help="only the last N")
    items.add_argument(
        "--after", metavar="SEQ", type=int, default=0, help="only those after sequence SEQ"
    )
    items.add_argument("--full", action="store_true", help="show whole payloads")

    state = commands.add_parser(
        "state", help="read or change a session's state", description="read or change the state"
    )
    state_commands = state.add_subparsers(title="commands", metavar="COMMAND", required=True)
    state_get = _command(state_commands, "get", _commands.state_get, "print the state or a key")
    state_get.add_argument("key", metavar="KEY", nargs="?", help="print only this key's value")
    state_set = _command(
        state_commands, "set", _commands.state_set, "set (and remove) top-level keys"
    )
    state_set.add_argument(
        "assignments",
        metavar="KEY=VALUE",
        type=_values.assignment,
        nargs="*",
        help="the value is read as JSON if it is JSON, else as a string",
    )
    state_set.add_argument(
        "--remove", metavar="KEY", action="append", help="remove this key (repeatable)"
    )

    compress = _command(
        commands,
        "compress",
        _commands.compress,
        "fold all but the last turns of a session's history into its summary",
    )
    compress.add_argument(
        "--keep-last",
        metavar="N",
        type=_values.count,
        help="turns to keep in the history; 0 folds every finished turn (server default: 20)",
    )

    watch = _command(
        commands,
        "watch",
        _watch.watch,
        "follow a session live, one line per event, until it is deleted or expires",
    )
    watch.add_argument(
        "--after",
        metavar="N",
        type=_values.count,
        help="first the events after event N that the server still holds (0: all it holds), "
        "then live ones (default: live events only)",
    )
    watch.epilog = (
        "A running turn's reply is printed as its text; other events as a line "
        "'TIME #SEQUENCE what happened'. With --json, one object per event: "
        '{"kind", "sequence", "time", "run_id", "turn_index", "replayed", "text", "item", '
        '"turn", "session", "first_available_sequence"}. Exits 0 when the session is '
        "deleted or expires, or on Ctrl-C; reconnects after the last event if the "
        "connection drops. " + GLOBAL_OPTIONS_NOTE
    )

    _command(commands, "end", _commands.end, "end a session: readable until it expires, no turns")

    delete = _command(commands, "delete", _commands.delete, "delete a session and its history")
    delete.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    export = _command(
        commands,
        "export",
        _transfer.export,
        "write sessions with their turns as JSON Lines (default: all the user's)",
        session=None,
    )
    export.add_argument("sessions", metavar="SESSION", nargs="*", help="the sessions to export")
    export.add_argument(
        "-o", "--output", metavar="FILE", default="-", help="where to write (default: - for stdout)"
    )

    import_ = _command(
        commands,
        "import",
        _transfer.import_,
        "re-create exported sessions, one JSON object per line",
        user=False,
        session=None,
    )
    import_.add_argument(
        "file", metavar="FILE", nargs="?", default="-", help="JSON Lines (default: - for stdin)"
    )
    import_.add_argument(
        "--user", metavar="USER_ID", help="give every session this owner instead of its own"
    )
    import_.epilog = (
        "Every session goes back to the app of its record, unless --app (or $SESSIONS_APP) "
        "names another. " + GLOBAL_OPTIONS_NOTE
    )
    return parser
