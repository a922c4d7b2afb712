"""Following a session live: ``sessionctl watch``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Generator, Iterator

from agent_sessions_client import SessionClient, SessionEvent, UnavailableError
from agent_sessions_client.cli._commands import load
from agent_sessions_client.cli._exit import OK, UNAVAILABLE, CliError
from agent_sessions_client.cli._output import Output, session_event_json, session_event_line

# The waits before reconnecting a watch that broke; the count starts again with every
# event received, so only a server gone for good ends the watch.
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


def watch(client: SessionClient, args: argparse.Namespace, out: Output) -> int:
    """Prints the session's events until it is deleted or expires (exit 0), or Ctrl-C
    (exit 0 too: stopping is how a watch ends). A broken connection is reconnected after
    the last event received, a few times with backoff."""
    session = load(client, args)
    printer = _Printer(out)
    if not out.as_json:
        out.note(
            f"Watching session {session.session_id} of {session.user_id}"
            + ("" if args.after is None else f" from event #{args.after}")
            + "; Ctrl-C stops."
        )
    after: int | None = args.after
    failures = 0
    try:
        while True:
            events = session.watch(after_sequence=after)
            try:
                for event in events:
                    printer.event(event)
                    failures = 0
                    if event.sequence:
                        after = event.sequence
                    if event.final:
                        return OK
                problem = "the server ended the watch before the session ended"
            except UnavailableError as error:
                problem = error.message
            finally:
                _close(events)
            if failures >= len(RECONNECT_DELAYS):
                raise CliError(f"watch lost: {problem}", UNAVAILABLE)
            delay = RECONNECT_DELAYS[failures]
            failures += 1
            printer.end_line()
            if not out.as_json:
                resumed = "" if after is None else f" after #{after}"
                out.note(f"(watch lost: {problem}; reconnecting{resumed} in {delay:g}s)")
            time.sleep(delay)
    except KeyboardInterrupt:
        return OK
    finally:
        printer.end_line()


def _close(events: Iterator[SessionEvent]) -> None:
    # Closing the iterator cancels the call now, rather than when it is collected.
    if isinstance(events, Generator):
        events.close()


class _Printer:
    """Writes events as they come: JSON lines, or one short line each, with a running
    reply's deltas written as its text, on a line of their own."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._line_open = False

    def event(self, event: SessionEvent) -> None:
        if self._out.as_json:
            self._out.json(session_event_json(event))
            return
        if event.kind == "delta":
            sys.stdout.write(event.text)
            self._line_open = True
        else:
            self.end_line()
            stamp = f"{event.time.astimezone():%H:%M:%S} " if event.time else ""
            sys.stdout.write(f"{stamp}#{event.sequence} {session_event_line(event)}\n")
        sys.stdout.flush()

    def end_line(self) -> None:
        """Ends a line of deltas, before anything else is written."""
        if self._line_open:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self._line_open = False
