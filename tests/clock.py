"""A clock that tests move forward themselves, instead of sleeping until a lease or an
expiry passes."""

from __future__ import annotations

from datetime import timedelta

from agent_sessions.sessions import wall_clock_ms


class ManualClock:
    """The wall clock in epoch milliseconds, plus whatever the test advanced it by (the
    real time keeps running under it, as Redis's own clock does)."""

    def __init__(self) -> None:
        self._offset_ms = 0

    def __call__(self) -> int:
        return wall_clock_ms() + self._offset_ms

    def advance(self, by: timedelta) -> None:
        self._offset_ms += round(by.total_seconds() * 1000)
