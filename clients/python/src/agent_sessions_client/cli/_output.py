"""How results are shown: rich tables for people, or JSON with no decoration for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent_sessions_client import (
    Compressed,
    Item,
    SessionEvent,
    SessionInfo,
    SessionsError,
    SessionStatus,
    Turn,
    TurnStatus,
)

# The turns table's index and status columns and the gaps between its four columns.
_FIXED_TURN_COLUMNS = 5 + len("IN_PROGRESS") + 3 * 3
# The items table's sequence, turn, type and who columns, and the gaps between its five.
_FIXED_ITEM_COLUMNS = 6 + 5 + len("TOOL_RESULT") + 30 + 4 * 3
# Agent ids narrower than this are never folded: the sessions table grows past the
# terminal's width instead, and the terminal wraps its lines.
_AGENT_FOLD_MIN = 8
_WIDE = 10_000  # a console width no table reaches, to measure a table's natural width
_STATUS_STYLE = {
    SessionStatus.ACTIVE: "green",
    SessionStatus.ENDED: "dim",
    TurnStatus.COMPLETED: "green",
    TurnStatus.IN_PROGRESS: "yellow",
    TurnStatus.FAILED: "red",
    TurnStatus.CANCELLED: "dim",
}


def session_json(info: SessionInfo) -> dict[str, Any]:
    """A session as the JSON object ``--json`` prints."""
    return {
        "session_id": info.session_id,
        "user_id": info.user_id,
        "app": info.app,
        "agent_id": info.agent_id,
        "status": info.status.value,
        "create_time": info.create_time.isoformat(),
        "update_time": info.update_time.isoformat(),
        "last_activity_time": info.last_activity_time.isoformat(),
        "expire_time": info.expire_time.isoformat(),
        "ttl_seconds": info.ttl.total_seconds(),
        "idle_timeout_seconds": info.idle_timeout.total_seconds(),
        "max_turns": info.max_turns,
        "turn_count": info.turn_count,
        "total_turns": info.total_turns,
        "folded_turns": info.folded_turns,
        "history_bytes": info.history_bytes,
        "external_agent": info.external_agent,
        "last_item_sequence": info.last_item_sequence,
        "state": info.state,
        "labels": info.labels,
        "summary": info.summary,
        "etag": info.etag,
    }


def compressed_json(result: Compressed) -> dict[str, Any]:
    """A compression's result as the JSON object ``--json`` prints (CompressSessionResponse)."""
    return {
        "session": session_json(result.info),
        "folded_turns": result.folded_turns,
        "summarizer": result.summarizer,
    }


def turn_json(turn: Turn) -> dict[str, Any]:
    """A turn as the JSON object ``--json`` prints."""
    return {
        "index": turn.index,
        "status": turn.status.value,
        "input": turn.input,
        "output": turn.output,
        "create_time": turn.create_time.isoformat(),
        "complete_time": turn.complete_time.isoformat() if turn.complete_time else None,
        "request_id": turn.request_id,
        "error": turn.error,
    }


def item_json(item: Item) -> dict[str, Any]:
    """An item as the JSON object ``--json`` prints; its payload kept as text."""
    return {
        "sequence": item.sequence,
        "turn_index": item.turn_index,
        "type": item.type.value,
        "type_name": item.type_name,
        "role": item.role,
        "name": item.name,
        "call_id": item.call_id,
        "item_id": item.item_id,
        "payload_json": item.payload_json,
        "create_time": item.create_time.isoformat() if item.create_time else None,
    }


def session_event_json(event: SessionEvent) -> dict[str, Any]:
    """A session's event as the JSON object ``watch --json`` prints: every key always
    there, null or empty when the event's kind has no such thing."""
    return {
        "kind": event.kind,
        "sequence": event.sequence,
        "time": event.time.isoformat() if event.time else None,
        "run_id": event.run_id,
        "turn_index": event.turn_index,
        "replayed": event.replayed,
        "text": event.text,
        "item": item_json(event.item) if event.item else None,
        "turn": turn_json(event.turn) if event.turn else None,
        "session": session_json(event.info) if event.info else None,
        "first_available_sequence": event.first_available_sequence,
    }


_PREVIEW = 60  # characters of an item's payload or a turn's input in a watch line


def session_event_line(event: SessionEvent) -> str:
    """A session's event as ``watch`` shows it: one short line, without its sequence
    number and time (deltas are shown as their text instead)."""
    turn = f"turn {event.turn_index}"
    if event.kind == "run_started":
        replay = " (replay)" if event.replayed else ""
        return f"{turn} started{replay}" + (f", run {event.run_id}" if event.run_id else "")
    if event.kind == "item" and event.item is not None:
        item = event.item
        kind = item.type_name or item.type.value.lower()
        who = " ".join(filter(None, [item.role, item.name]))
        return f"{turn} {kind} {who}: {_preview(item.payload_json, _PREVIEW)}"
    if event.kind == "turn_committed" and event.turn is not None:
        committed = event.turn
        line = f"turn {committed.index} {committed.status.value}"
        if committed.error:
            line += f": {_preview(committed.error, _PREVIEW)}"
        return line + f" (input: {_preview(committed.input, _PREVIEW)})"
    if event.kind == "compressed" and event.info is not None:
        return f"compressed: turns 1-{event.info.folded_turns} folded into the summary"
    if event.kind == "gap":
        if event.first_available_sequence:
            held = f"the server holds them from #{event.first_available_sequence}"
        else:
            held = "the server holds none"
        return f"gap: missed events are gone ({held}); read the history again (sessionctl turns)"
    described = {
        "session_updated": "session updated",
        "ended": "session ended",
        "deleted": "session deleted",
        "expired": "session expired",
    }
    return described.get(event.kind, event.kind.replace("_", " "))


def span(length: timedelta) -> str:
    """A duration in its two largest units: ``2d``, ``1h30m``, ``45s``."""
    seconds = int(length.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts[:2]) or "0s"


def size(count: int) -> str:
    """A byte count for people: ``512 B``, ``1.5 KiB``, ``2.0 MiB``."""
    if count < 1024:
        return f"{count} B"
    amount = count / 1024
    for unit in ("KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def _history(info: SessionInfo) -> str:
    held = info.total_turns - info.folded_turns
    text = f"{held} turn(s), {size(info.history_bytes)}"
    if info.folded_turns:
        text += f"; turns 1-{info.folded_turns} folded into the summary"
    return text


def relative(moment: datetime, now: datetime) -> str:
    """``in 29m``, ``3m12s ago`` or ``now``."""
    delta = moment - now
    if abs(delta) < timedelta(seconds=1):
        return "now"
    return f"in {span(delta)}" if delta > timedelta(0) else f"{span(-delta)} ago"


def _status(status: SessionStatus | TurnStatus) -> Text:
    return Text(status.value, style=_STATUS_STYLE[status])


def _preview(text: str, room: int) -> str:
    line = " ".join(text.split())  # one line per row, whatever the text's own layout
    return line if len(line) <= room else line[: room - 1] + "…"


class Output:
    """Writes results to stdout and notes and errors to stderr, as tables or as JSON."""

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        # Text from the server goes into Text objects, never through rich's markup parser.
        self.console = Console(highlight=False)
        self.stderr = Console(stderr=True, highlight=False)

    def json(self, value: Any) -> None:
        """One JSON value on one line."""
        sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        """A message for the person at the terminal (stderr, so it never mixes with data)."""
        self.stderr.print(Text(message), style="dim", soft_wrap=True)

    def error(
        self,
        message: str,
        *,
        code: str = "UNKNOWN",
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """An error on stderr: ``sessionctl: <message>``, or with ``--json`` one object
        ``{"error": {"code", "reason", "message", "metadata"}}`` on one line.

        ``code`` is a gRPC status name, ``reason`` the server's ``ErrorInfo`` reason
        (empty for failures found by sessionctl itself), ``metadata`` its values.
        """
        if self.as_json:
            failure = {
                "code": code,
                "reason": reason,
                "message": message,
                "metadata": dict(metadata or {}),
            }
            sys.stderr.write(json.dumps({"error": failure}, ensure_ascii=False) + "\n")
            sys.stderr.flush()
        else:
            self.stderr.print(Text(f"sessionctl: {message}"), style="red", soft_wrap=True)

    def failure(self, error: SessionsError, *, context: str = "") -> None:
        """A failed call, as :meth:`error` shows it; ``context`` goes before its message."""
        self.error(
            context + error.message,
            code=error.code.name,
            reason=error.reason,
            metadata=error.metadata,
        )

    def session(self, info: SessionInfo) -> None:
        if self.as_json:
            self.json(session_json(info))
            return
        now = datetime.now(UTC)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        max_turns = str(info.max_turns) if info.max_turns else "unlimited"
        rows: list[tuple[str, str | Text]] = [
            ("session", info.session_id),
            ("user", info.user_id),
            ("agent", info.agent_id),
            ("status", _status(info.status)),
            ("turns", f"{info.turn_count} completed, {info.total_turns} in all"),
            ("history", _history(info)),
            ("max turns", max_turns),
            ("created", f"{info.create_time:%Y-%m-%d %H:%M:%S} UTC"),
            ("last activity", relative(info.last_activity_time, now)),
            (
                "expires",
                f"{info.expire_time:%Y-%m-%d %H:%M:%S} UTC ({relative(info.expire_time, now)})",
            ),
            ("ttl", span(info.ttl)),
            ("idle timeout", span(info.idle_timeout)),
            ("labels", ", ".join(f"{k}={v}" for k, v in sorted(info.labels.items())) or "-"),
            ("state", json.dumps(info.state, ensure_ascii=False) if info.state else "-"),
        ]
        if info.app:  # the default app goes without saying
            rows.insert(2, ("app", info.app))
        if info.summary:
            rows.append(("summary", info.summary))
        for key, value in rows:
            grid.add_row(key, value if isinstance(value, Text) else Text(value))
        self.console.print(grid)

    def compressed(self, result: Compressed) -> None:
        """What a compression folded, and the summary it left."""
        if self.as_json:
            self.json(compressed_json(result))
            return
        info = result.info
        held = info.total_turns - info.folded_turns
        if result.folded_turns:
            self.console.print(
                f"Folded {result.folded_turns} turn(s) of session {info.session_id} into its "
                f"summary ({result.summarizer} summarizer); the history keeps {held} turn(s), "
                f"{size(info.history_bytes)}.",
                markup=False,
                soft_wrap=True,
            )
        else:
            # The history was no longer than keep_last, or its older turns were running.
            self.console.print(
                f"Nothing to fold: session {info.session_id} keeps the {held} turn(s) of its "
                "history.",
                markup=False,
                soft_wrap=True,
            )
        if info.summary:
            self.console.print(Text("summary:", style="bold"))
            self.console.print(Text(info.summary), soft_wrap=True)

    def sessions(self, infos: Iterable[SessionInfo]) -> None:
        """A table of sessions, or one JSON object per line as they arrive."""
        if self.as_json:
            for info in infos:
                self.json(session_json(info))
            return
        # Gaps of two spaces: at 80 columns a 32-character session id leaves the agent
        # id some room.
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0))
        table.add_column("SESSION", no_wrap=True)
        table.add_column("AGENT", overflow="fold")  # the only column that may fold
        table.add_column("STATUS", no_wrap=True)
        table.add_column("TURNS", justify="right", no_wrap=True)
        table.add_column("ACTIVITY", no_wrap=True)
        table.add_column("EXPIRES", no_wrap=True)
        now = datetime.now(UTC)
        longest_agent = len("AGENT")
        for info in infos:
            table.add_row(
                Text(info.session_id),
                Text(info.agent_id),
                _status(info.status),
                str(info.turn_count),
                relative(info.last_activity_time, now),
                relative(info.expire_time, now),
            )
            longest_agent = max(longest_agent, cell_len(info.agent_id))
        if not table.row_count:
            self.note("no sessions")
            return
        # Rich fits a table to the terminal by folding the agent ids, and when even that
        # is not enough, by cutting every column, session ids too. Nothing is cut here:
        # past a narrow agent column the table grows, and the terminal wraps its lines.
        natural = self.console.measure(table, options=self.console.options.update_width(_WIDE))
        needed = natural.maximum - longest_agent + min(longest_agent, _AGENT_FOLD_MIN)
        self._print_wide(table, needed)

    def _print_wide(self, table: Table, width: int) -> None:
        """Prints ``table`` at least ``width`` wide, whatever the terminal's width."""
        terminal = self.console.width
        if width <= terminal:
            self.console.print(table)
            return
        self.console.width = width
        try:
            self.console.print(table)
        finally:
            self.console.width = terminal

    def turns(self, turns: Iterable[Turn], *, full: bool = False) -> None:
        """A table of turns, or one JSON object per line as they arrive.

        The inputs are shown whole, wrapped in their column; the replies are cut to a
        line each unless ``full``.
        """
        if self.as_json:
            for turn in turns:
                self.json(turn_json(turn))
            return
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("STATUS", no_wrap=True)
        # Rich would squeeze the narrow columns away to fit long texts: bound the texts'
        # columns instead, to a third and two thirds of what the index and status leave.
        room = max(self.console.width - _FIXED_TURN_COLUMNS, 30)
        input_room, output_room = room // 3, room - room // 3
        table.add_column("INPUT", max_width=input_room, overflow="fold")
        table.add_column("OUTPUT", max_width=output_room, overflow="fold")
        for turn in turns:
            reply = turn.error or turn.output
            table.add_row(
                str(turn.index),
                _status(turn.status),
                Text(turn.input),
                Text(
                    reply if full else _preview(reply, output_room),
                    style="red" if turn.error else "",
                ),
            )
        if table.row_count:
            self.console.print(table)
        else:
            self.note("no turns")

    def items(self, items: Iterable[Item], *, full: bool = False) -> None:
        """A table of items, or one JSON object per line as they arrive."""
        if self.as_json:
            for item in items:
                self.json(item_json(item))
            return
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("SEQ", justify="right", no_wrap=True)
        table.add_column("TURN", justify="right", no_wrap=True)
        table.add_column("TYPE", no_wrap=True)
        table.add_column("WHO", no_wrap=True)
        room = max(self.console.width - _FIXED_ITEM_COLUMNS, 30)
        table.add_column("PAYLOAD", max_width=room, overflow="fold")
        for item in items:
            kind = item.type_name or item.type.value.lower()
            who = " ".join(filter(None, [item.role, item.name, item.call_id]))
            payload = item.payload_json if full else _preview(item.payload_json, room)
            table.add_row(str(item.sequence), str(item.turn_index), kind, who, Text(payload))
        if table.row_count:
            self.console.print(table)
        else:
            self.note("no items")

    def value(self, value: Any) -> None:
        """A JSON value: one line with ``--json``; a bare string or indented JSON otherwise."""
        if self.as_json:
            self.json(value)
        elif isinstance(value, str):
            self.console.print(Text(value), soft_wrap=True)
        else:
            self.console.print_json(json.dumps(value, ensure_ascii=False))
