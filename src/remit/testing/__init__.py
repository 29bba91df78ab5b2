"""Helpers shipped for tests of Remit and of code that embeds it: a frozen clock, a throwaway Remit."""

from __future__ import annotations

import datetime as dt

__all__ = ["FrozenClock"]


class FrozenClock:
    """A clock that only moves when told to; tests advance time instead of sleeping."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC)
        if self._now.tzinfo is None:
            msg = "FrozenClock needs an aware datetime"
            raise ValueError(msg)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, delta: dt.timedelta) -> None:
        self._now += delta

    def set(self, moment: dt.datetime) -> None:
        self._now = moment
