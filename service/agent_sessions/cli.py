"""The ``session-server`` command."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from agent_sessions import logs
from agent_sessions.config import from_cli, problems
from agent_sessions.server import run
from agent_sessions.workers import run_workers


def main(argv: list[str] | None = None) -> None:
    """Parses flags and ``SESSIONS_*`` variables, then serves until stopped.

    Exits 2 when the settings are wrong (each problem printed on a line of its own), 1
    when the server cannot start (a busy port, logged), 0 once stopped by a signal.
    """
    try:
        settings = from_cli(sys.argv[1:] if argv is None else argv)
    except ValidationError as error:
        for problem in problems(error):
            print(f"session-server: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure(settings.log_level, settings.log_format)
    if settings.workers > 1:
        raise SystemExit(run_workers(settings))
    raise SystemExit(run(settings))
