"""``sessionctl``: the operator's command line for the agent session service.

::

    sessionctl create --user U --agent A [--session-id ID] [--ttl 48h] [--idle-timeout 30m]
                      [--max-turns N] [--state JSON] [--label K=V ...]
    sessionctl get --user U SESSION
    sessionctl list --user U [--agent A] [--page-size N] [--limit N]
    sessionctl run --user U SESSION [TEXT] [--request-id ID]     TEXT or stdin
    sessionctl chat --user U [SESSION] [--agent A]                interactive
    sessionctl turns --user U SESSION [--newest-first] [--limit N] [--full]
    sessionctl items --user U SESSION [--last N | --after SEQ] [--full]
    sessionctl state get --user U SESSION [KEY]
    sessionctl state set --user U SESSION [KEY=VALUE ...] [--remove KEY]
    sessionctl compress --user U SESSION [--keep-last N]
    sessionctl watch --user U SESSION [--after N]                 live events
    sessionctl end --user U SESSION
    sessionctl delete --user U SESSION [--yes]
    sessionctl export --user U [SESSION ...] [--output FILE|-]    JSON Lines
    sessionctl import [FILE|-] [--user U]

Global options (before or after the command): ``--address`` (``HOST:PORT``,
``[IPV6]:PORT`` or ``unix:PATH``; default ``$SESSIONS_ADDRESS``, else
``127.0.0.1:50051``), ``--app APP`` (the application whose sessions every command
works on; default ``$SESSIONS_APP``, else the default app; ``import`` keeps each
record's app without it), ``--json``, ``--timeout SECONDS``, ``--token`` (default
``$SESSIONS_TOKEN``), ``--tls``, ``--ca-file PATH`` (default ``$SESSIONS_CA_FILE``).

Exit codes: 0 ok; 1 any other error; 2 invalid input (command line, request or
record); 3 not found; 4 server unavailable or deadline exceeded; 5 conflict (the
session exists or has ended, max turns reached, a concurrent change won); 130
interrupted. ``chat`` goes on after a failed turn, then exits with the first failed
turn's code. Errors are printed as ``sessionctl: <message>`` on stderr; with ``--json``, as
one JSON object per error on a line of stderr::

    {"error": {"code": "NOT_FOUND", "reason": "SESSION_NOT_FOUND",
               "message": "...", "metadata": {"session_id": "..."}}}

``code`` is the gRPC status name, ``reason`` and ``metadata`` those of the server's
``google.rpc.ErrorInfo`` (empty when sessionctl found the error itself).

Needs the ``cli`` extra: ``pip install 'agent-sessions-client[cli]'``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: runs one command line and returns its exit code."""
    try:
        import rich  # noqa: F401  # only to learn whether the extra is installed
    except ImportError:
        sys.stderr.write("sessionctl needs rich: pip install 'agent-sessions-client[cli]'\n")
        return 1
    from agent_sessions_client.cli._main import run

    return run(argv)
