"""Defaults and limits of sessions and turns: the policy the session logic applies."""

from __future__ import annotations

import time
from dataclasses import dataclass

MAX_IMPORT_TURNS = 10_000
MAX_IMPORT_ITEMS = 100_000
MAX_TURN_INDEX = 2**31 - 1
"""Turn indexes are int32 on the wire."""
MAX_FOLDED_TURNS = 1_000_000_000
"""The most folded turns an import may claim: an imported history ends far enough below
MAX_TURN_INDEX that no session can run its way past it."""
SESSIONS_PAGE_SIZE = 50
TURNS_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Defaults and limits for sessions and turns. Their own defaults live in the
    settings only: ``Settings.policy()`` builds a policy."""

    default_ttl_ms: int
    default_idle_timeout_ms: int
    default_max_turns: int
    max_ttl_ms: int
    max_input_bytes: int
    max_state_bytes: int
    max_item_bytes: int
    max_items_per_append: int
    context_turns: int
    run_timeout_ms: int
    turn_lease_ms: int
    """How long a running turn stays its run's without a heartbeat (renewed every third):
    a server that dies mid-turn blocks the session this long at most."""
    max_sessions_per_user: int
    max_concurrent_runs: int
    keep_last_turns: int
    """Turns a compression keeps in the history when the caller does not say."""
    max_history_turns: int
    """Past this many turns in the history, a run compresses it afterwards (0: never)."""
    max_history_bytes: int
    """Past this many input and output bytes in the history, likewise (0: never)."""
    max_summary_bytes: int
    archive_folded_turns: bool
    publish_delay_ms: int = 50
    """How long a run holds its deltas and items before publishing them to the session's
    event log (a reply that ends sooner goes in with its commit: no round trip more)."""
