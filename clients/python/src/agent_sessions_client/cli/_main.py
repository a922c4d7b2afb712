"""Runs one command line: parse it, connect, call the handler, map failures to exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agent_sessions_client import SessionClient, SessionsError, UnavailableError
from agent_sessions_client.cli._exit import ERROR, INTERRUPTED, CliError, exit_code
from agent_sessions_client.cli._output import Output
from agent_sessions_client.cli._parser import Handler, build_parser

DEFAULT_TIMEOUT = 10.0
DEFAULT_RUN_TIMEOUT = 300.0


def run(argv: Sequence[str] | None = None) -> int:
    """Runs ``sessionctl`` with ``argv`` (default: the process's) and returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ca_file and not args.tls:
        parser.error("--ca-file needs --tls")
    # A private CA to trust instead of the system's: --ca-file, else $SESSIONS_CA_FILE.
    ca_file = (args.ca_file or os.environ.get("SESSIONS_CA_FILE")) if args.tls else None
    try:
        root_certificates = Path(ca_file).read_bytes() if ca_file else None
    except OSError as error:
        parser.error(f"cannot read the CA file {ca_file}: {error.strerror}")
    out = Output(as_json=args.json)
    client = SessionClient(
        args.address,
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
        prefix = "" if error.reason else f"cannot reach {client.address}: "
        out.error(prefix + error.message)
        return exit_code(error)
    except SessionsError as error:
        out.error(error.message)
        return exit_code(error)
    except CliError as error:
        out.error(str(error))
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
