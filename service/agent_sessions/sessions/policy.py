"""Defaults and limits of sessions and turns: the policy the session logic applies."""

from __future__ import annotations

import time
from dataclasses import dataclass

MAX_IMPORT_TURNS = 10_000
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
    """Defaults and limits for sessions and turns."""

    default_ttl_ms: int = 24 * 3_600_000
    default_idle_timeout_ms: int = 30 * 60_000
    default_max_turns: int = 0
    max_ttl_ms: int = 30 * 24 * 3_600_000
    max_input_bytes: int = 32 * 1024
    max_state_bytes: int = 64 * 1024
    context_turns: int = 20
    run_timeout_ms: int = 5 * 60_000
    max_sessions_per_user: int = 10_000
    max_concurrent_runs: int = 1_000
    keep_last_turns: int = 20
    """Turns a compression keeps in the history when the caller does not say."""
    max_history_turns: int = 500
    """Past this many turns in the history, a run compresses it afterwards (0: never)."""
    max_history_bytes: int = 2 * 1024 * 1024
    """Past this many input and output bytes in the history, likewise (0: never)."""
    max_summary_bytes: int = 8 * 1024
    archive_folded_turns: bool = False
