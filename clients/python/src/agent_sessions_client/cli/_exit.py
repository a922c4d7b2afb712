"""Exit codes, and the exception that carries one for failures found by sessionctl itself."""

from __future__ import annotations

import argparse

from agent_sessions_client import (
    AbortedError,
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    SessionsError,
    UnavailableError,
)

OK = 0
ERROR = 1
INVALID_INPUT = 2  # the code argparse exits with for a bad command line, too
NOT_FOUND = 3
UNAVAILABLE = 4
CONFLICT = 5
INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C

EPILOG = """\
exit codes:
  0  ok
  1  any other error
  2  invalid input (command line, request or record)
  3  not found (unknown, expired, deleted or another user's session)
  4  server unavailable or deadline exceeded
  5  conflict (session exists or has ended, max turns reached, concurrent change)
  130  interrupted (Ctrl-C)
"""


# The gRPC status name that --json reports for a failure found by sessionctl itself.
_STATUS = {INVALID_INPUT: "INVALID_ARGUMENT", NOT_FOUND: "NOT_FOUND", UNAVAILABLE: "UNAVAILABLE"}


class CliError(Exception):
    """A failure detected by sessionctl, reported as ``sessionctl: <message>``.

    ``status`` is the gRPC status name ``--json`` reports, by default the one that
    goes with ``code``.
    """

    def __init__(self, message: str, code: int = ERROR, *, status: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.status = status or _STATUS.get(code, "UNKNOWN")


class UsageError(Exception):
    """A command line that ``parser`` cannot parse; exit code 2."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


def exit_code(error: SessionsError) -> int:
    """The exit code for a failed call."""
    if isinstance(error, InvalidArgumentError):
        return INVALID_INPUT
    if isinstance(error, NotFoundError):
        return NOT_FOUND
    if isinstance(error, UnavailableError | DeadlineExceededError):
        return UNAVAILABLE
    if isinstance(error, AlreadyExistsError | AbortedError | FailedPreconditionError):
        return CONFLICT
    return ERROR
