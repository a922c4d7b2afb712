"""The ``session-server`` command."""

from __future__ import annotations

import asyncio
import sys

from pydantic import ValidationError
from pydantic_settings import CliApp

from agent_sessions import logs
from agent_sessions.config import Settings
from agent_sessions.server import serve
from agent_sessions.workers import run_workers


def main(argv: list[str] | None = None) -> None:
    """Parses flags and ``SESSIONS_*`` variables, then serves until stopped."""
    try:
        settings = CliApp.run(Settings, cli_args=sys.argv[1:] if argv is None else argv)
    except ValidationError as error:
        for problem in error.errors():
            # Checks across settings (--workers with the store) name no single field.
            field = ".".join(str(part) for part in problem["loc"])
            where = f"{field}: " if field else ""
            print(f"session-server: {where}{problem['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure(settings.log_level, settings.log_format)
    if settings.workers > 1:
        raise SystemExit(run_workers(settings))
    asyncio.run(serve(settings))
