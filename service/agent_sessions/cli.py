"""The ``session-server`` command."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError
from pydantic_settings import CliApp

from agent_sessions import logs
from agent_sessions.config import Settings
from agent_sessions.server import serve


def main(argv: list[str] | None = None) -> None:
    """Parses flags and ``SESSIONS_*`` variables, then serves until stopped."""
    try:
        settings = CliApp.run(Settings, cli_args=sys.argv[1:] if argv is None else argv)
    except ValidationError as error:
        for problem in error.errors():
            field = ".".join(str(part) for part in problem["loc"])
            print(f"session-server: {field}: {problem['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
