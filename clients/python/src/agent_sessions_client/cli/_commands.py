"""The commands on sessions and their history: create, get, list, turns, items, state,
compress, end, delete."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from itertools import islice
from typing import Any

from agent_sessions_client import AbortedError, Item, Session, SessionClient
from agent_sessions_client.cli._exit import INVALID_INPUT, NOT_FOUND, OK, CliError
from agent_sessions_client.cli._output import Output

_STATE_ATTEMPTS = 3  # read-modify-write rounds before a busy session's conflict is reported


def app(args: argparse.Namespace) -> str:
    """The app named by --app or $SESSIONS_APP; "" (the default app) when neither does."""
    return str(args.app or "")


def load(client: SessionClient, args: argparse.Namespace) -> Session:
    """The session named on the command line; ``NotFoundError`` if it is not the user's
    (or not in the app)."""
    session: Session = client.load_session(args.session, user_id=args.user, app=app(args))
    return session


def create(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    session = client.create_session(
        user_id=args.user,
        agent_id=args.agent,
        session_id=args.session_id or "",
        ttl=args.ttl,
        idle_timeout=args.idle_timeout,
        max_turns=args.max_turns,
        state=args.state,
        labels=dict(args.label or ()),
        app=app(args),
    )
    out.session(session.info)
    return OK


def get(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    out.session(load(client, args).info)
    return OK


def list_sessions(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    sessions = client.list_sessions(
        user_id=args.user, agent_id=args.agent or "", app=app(args), page_size=args.page_size or 0
    )
    out.sessions(session.info for session in islice(sessions, args.limit))
    return OK


def turns(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    session = load(client, args)
    history = session.turns(newest_first=args.newest_first, page_size=args.limit or 0)
    out.turns(islice(history, args.limit), full=args.full)
    return OK


def items(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    session = load(client, args)
    if args.last:
        listed: Iterable[Item] = session.last_items(args.last)
    else:
        listed = session.items(after_sequence=args.after)
    out.items(listed, full=args.full)
    return OK


def state_get(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    state = load(client, args).state
    if args.key is None:
        out.value(state)
    elif args.key in state:
        out.value(state[args.key])
    else:
        raise CliError(f"the state of session {args.session} has no key {args.key!r}", NOT_FOUND)
    return OK


def state_set(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    changes: dict[str, Any] = dict(args.assignments)
    remove = tuple(args.remove or ())
    if not changes and not remove:
        raise CliError("state set needs KEY=VALUE arguments or --remove KEY", INVALID_INPUT)
    session = load(client, args)
    # The update is conditional on the etag just read; when someone else (the agent,
    # during a turn) wins the race, read again and reapply, as the client suggests.
    for _ in range(_STATE_ATTEMPTS - 1):
        try:
            out.value(session.update_state(changes, remove=remove))
            return OK
        except AbortedError:
            session.refresh()
    out.value(session.update_state(changes, remove=remove))
    return OK


def compress(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    # One call, not retried: it may have a model write the summary, and a conflict
    # (another compression of the session won) is the operator's to judge.
    out.compressed(load(client, args).compress(args.keep_last))
    return OK


def end(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    out.session(load(client, args).end())
    return OK


def delete(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    session = load(client, args)
    if not args.yes:
        _confirm_delete(session)
    session.delete()
    if out.as_json:
        out.json(
            {
                "session_id": session.session_id,
                "user_id": session.user_id,
                "app": session.app,
                "deleted": True,
            }
        )
    else:
        out.console.print(f"Deleted session {session.session_id}.", markup=False)
    return OK


def _confirm_delete(session: Session) -> None:
    if not sys.stdin.isatty():
        raise CliError(
            "refusing to delete without --yes when stdin is not a terminal", INVALID_INPUT
        )
    info = session.info
    question = (
        f"Delete session {info.session_id} of {info.user_id} "
        f"and its {info.total_turns - info.folded_turns} turn(s)? [y/N] "
    )
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("not deleted", status="CANCELLED")
