"""Runs one command line: parse it, connect, call the handler, map failures to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agent_sessions_client import SessionClient, SessionsError, UnavailableError
from agent_sessions_client.cli import _values
from agent_sessions_client.cli._exit import (
    ERROR,
    INTERRUPTED,
    INVALID_INPUT,
    CliError,
    UsageError,
    exit_code,
)
from agent_sessions_client.cli._output import Output
from agent_sessions_client.cli._parser import Handler, build_parser

DEFAULT_TIMEOUT = 10.0
DEFAULT_RUN_TIMEOUT = 300.0


def run(argv: Sequence[str] | None = None) -> int:
    """Runs ``sessionctl`` with ``argv`` (default: the process's) and returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Known before parsing, so that a command line that does not parse is reported as
    # JSON too; everything after `--` is an argument, not an option.
    out = Output(as_json="--json" in argv[: argv.index("--") if "--" in argv else None])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        address = _address(parser, args)
        args.app = _app(parser, args)
        root_certificates = _root_certificates(parser, args)
    except UsageError as error:
        if out.as_json:
            out.error(error.message, code="INVALID_ARGUMENT")
        else:  # as argparse itself reports it
            error.parser.print_usage(sys.stderr)
            sys.stderr.write(f"{error.parser.prog}: error: {error.message}\n")
        return INVALID_INPUT
    out = Output(as_json=args.json)
    client = SessionClient(
        address,
        tls=args.tls,
        root_certificates=root_certificates,
        token=args.token or os.environ.get("SESSIONS_TOKEN") or None,
        default_timeout=args.timeout or DEFAULT_TIMEOUT,
        run_timeout=args.timeout or DEFAULT_RUN_TIMEOUT,
    )
    handler: Handler = args.handler
    try:
        with client:
            return handler(client, args, out)
    except UnavailableError as error:
        # Without an ErrorInfo reason the server never answered: say where we knocked.
        out.failure(error, context="" if error.reason else f"cannot reach {client.address}: ")
        return exit_code(error)
    except SessionsError as error:
        out.failure(error)
        return exit_code(error)
    except CliError as error:
        out.error(str(error), code=error.status)
        return error.code
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`sessionctl list | head`): not an error worth a traceback,
        # and Python's own flush of stdout at exit must not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ERROR


def _address(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """--address (checked as it was parsed), else $SESSIONS_ADDRESS checked the same way."""
    if args.address:
        return str(args.address)
    from_environment = os.environ.get("SESSIONS_ADDRESS")
    if not from_environment:
        return None  # the client's default
    try:
        return _values.address(from_environment)
    except argparse.ArgumentTypeError as error:
        parser.error(f"$SESSIONS_ADDRESS: {error}")


def _app(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """--app (checked as it was parsed), else $SESSIONS_APP checked the same way; None when
    neither names one (the default app, or for ``import`` each record's own)."""
    if args.app is not None:
        return str(args.app)
    from_environment = os.environ.get("SESSIONS_APP")
    if not from_environment:
        return None
    try:
        return _values.app(from_environment)
    except argparse.ArgumentTypeError as error:
        parser.error(f"$SESSIONS_APP: {error}")


def _root_certificates(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bytes | None:
    """A private CA to trust instead of the system's: --ca-file, else $SESSIONS_CA_FILE."""
    if args.ca_file and not args.tls:
        parser.error("--ca-file needs --tls")
    ca_file = (args.ca_file or os.environ.get("SESSIONS_CA_FILE")) if args.tls else None
    try:
        return Path(ca_file).read_bytes() if ca_file else None
    except OSError as error:
        parser.error(f"cannot read the CA file {ca_file}: {error.strerror}")
