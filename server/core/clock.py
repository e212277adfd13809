"""The one source of "now", so tests and the watchdog can move time."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


class Clock:
    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)

    def now_us(self) -> int:
        """Now in epoch microseconds, as the projects table keeps its moments."""
        return int(self.now().timestamp() * 1_000_000)


class FrozenClock(Clock):
    """A clock that only moves when told to."""

    def __init__(self, tz: ZoneInfo, start: datetime) -> None:
        super().__init__(tz)
        self._now = start.astimezone(tz)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta
