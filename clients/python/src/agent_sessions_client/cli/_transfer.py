"""Sessions to and from JSON Lines, one session with its whole history per line:
``export`` and ``import``, with a progress bar on stderr for long work."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from agent_sessions_client import (
    AlreadyExistsError,
    DeadlineExceededError,
    NotFoundError,
    Session,
    SessionClient,
    SessionsError,
    UnavailableError,
)
from agent_sessions_client.cli._commands import app
from agent_sessions_client.cli._exit import ERROR, INVALID_INPUT, OK, CliError, exit_code
from agent_sessions_client.cli._output import Output

_FEW = 3  # sessions done too fast for a progress bar to be more than a flicker
# Not worth going on for: every later session would fail the same way.
_FATAL = (UnavailableError, DeadlineExceededError)


def export(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    named: list[str] = args.sessions
    sessions: list[Session | str] = list(named) or list(
        client.list_sessions(user_id=args.user, app=app(args))
    )
    exported = turns = failed = 0
    first_failure = OK
    with _opened(args.output, "w") as sink, _progress(out, "Exporting", len(sessions)) as advance:
        for item in sessions:
            session_id = item if isinstance(item, str) else item.session_id
            try:
                record = _session(client, args.user, app(args), item).export()
            except _FATAL:
                raise
            except NotFoundError as error:
                # A session listed a moment ago may have expired since: nothing to export.
                if named:
                    failed += 1
                    first_failure = first_failure or exit_code(error)
                    out.failure(error)
            except SessionsError as error:
                failed += 1
                first_failure = first_failure or exit_code(error)
                out.failure(error, context=f"{session_id}: ")
            else:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                sink.flush()
                exported += 1
                turns += len(record["turns"])
            advance()
    summary = {"exported": exported, "turns": turns, "failed": failed}
    if out.as_json and args.output != "-":
        out.json(summary)
    else:  # the records themselves may be on stdout: the summary must not join them
        where = "" if args.output == "-" else f" to {args.output}"
        out.note(f"Exported {exported} session(s) with {turns} turn(s){where}; {failed} failed.")
    return first_failure


def import_(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    imported = existing = failed = 0
    first_failure = OK
    with _opened(args.file, "r") as source:
        total = _count_records(source) if source.seekable() else None
        with _progress(out, "Importing", total) as advance:
            for number, line in enumerate(source, start=1):
                if not line.strip():
                    continue
                try:
                    record = _record(line)
                    # Without --app, each session goes back to its record's app.
                    client.import_session(record, user_id=args.user, app=args.app)
                    imported += 1
                except ValueError as error:
                    failed += 1
                    first_failure = first_failure or INVALID_INPUT
                    out.error(f"line {number}: {error}", code="INVALID_ARGUMENT")
                except AlreadyExistsError:
                    # Already there, from an earlier run of the same import perhaps: the
                    # rest of the file still deserves its chance.
                    existing += 1
                except _FATAL:
                    raise
                except SessionsError as error:
                    failed += 1
                    first_failure = first_failure or exit_code(error)
                    session_id = record.get("session_id")
                    where = f"line {number} ({session_id})" if session_id else f"line {number}"
                    out.failure(error, context=f"{where}: ")
                advance()
    if out.as_json:
        out.json({"imported": imported, "already_existing": existing, "failed": failed})
    else:
        out.console.print(
            f"Imported {imported} session(s); {existing} already existed; {failed} failed.",
            markup=False,
        )
    return first_failure


def _session(client: SessionClient, user_id: str, app: str, item: Session | str) -> Session:
    if isinstance(item, str):
        return client.load_session(item, user_id=user_id, app=app)
    return item


def _record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(record, dict):
        raise ValueError("not a session record: expected a JSON object")
    return record


def _count_records(source: IO[str]) -> int:
    records = sum(1 for line in source if line.strip())
    source.seek(0)
    return records


@contextmanager
def _opened(path: str, mode: str) -> Iterator[IO[str]]:
    if path == "-":  # stdin or stdout, which stay open for whatever comes after
        yield sys.stdin if mode == "r" else sys.stdout
        return
    try:
        file = open(path, mode, encoding="utf-8")  # noqa: SIM115  # closed below
    except OSError as error:
        raise CliError(f"cannot open {path}: {error.strerror}", ERROR) from None
    with file:
        yield file


@contextmanager
def _progress(out: Output, description: str, total: int | None) -> Iterator[Callable[[], None]]:
    # Yields the function to call once per session done, which moves the bar if there is one.
    if not out.stderr.is_terminal or (total is not None and total <= _FEW):
        yield lambda: None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # Transient: once done, the bar gives way to the summary line.
    with Progress(*columns, console=out.stderr, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)
