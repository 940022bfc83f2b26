"""The one clock every part of cleanroom reads the time from.

Time is an input: budget periods, report slots, template default windows,
sessions, audit and store timestamps all ask :func:`now`, never
``datetime.now``. Production reads the system clock; tests (and a room
replaying a day) install another clock with :func:`use` and move it. The
clock is process-wide on purpose: a room's threads (API workers, the report
scheduler) must agree on what time it is, and a test sets the time once for
all of them.

Monotonic timers that measure durations (timeouts, progress) are not dates
and stay on ``time.monotonic``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of the current time, always timezone-aware."""

    def now(self) -> datetime:
        """The current instant (timezone-aware)."""
        ...


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        """The machine's current time in UTC."""
        return datetime.now(UTC)


@dataclass
class SetClock:
    """A clock put at an instant by a test; it moves only when told, or with real time.

    ``ticking=False`` stands still (exact assertions on stored times);
    ``ticking=True`` runs on from ``at`` at the machine's pace, for tests that
    drive a live room whose threads wait for time to pass.
    """

    at: datetime
    ticking: bool = False
    _mark: float = field(default_factory=time.monotonic, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.at = aware(self.at)

    def now(self) -> datetime:
        """The instant this clock shows."""
        with self._lock:
            if not self.ticking:
                return self.at
            return self.at + timedelta(seconds=time.monotonic() - self._mark)

    def set(self, at: datetime) -> None:
        """Show ``at`` (timezone-aware) from now on."""
        with self._lock:
            self.at, self._mark = aware(at), time.monotonic()

    def advance(self, delta: timedelta) -> None:
        """Move forward (or back, with a negative delta)."""
        with self._lock:
            self.at += delta


_current: Clock = SystemClock()


def now() -> datetime:
    """The room's current time (timezone-aware, UTC unless a set clock says otherwise)."""
    return _current.now().astimezone(UTC)


def stamp(at: datetime | None = None) -> str:
    """UTC ISO-8601 to the second: the one shape of stored times, so they compare as text."""
    return aware(at if at is not None else now()).astimezone(UTC).isoformat(timespec="seconds")


def aware(at: datetime) -> datetime:
    """``at`` itself, refusing a naive datetime (its zone would be a guess)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("times must be timezone-aware (a naive time is ambiguous)")
    return at


def current() -> Clock:
    """The clock in force."""
    return _current


def install(clock: Clock) -> Clock:
    """Make ``clock`` the process's clock; returns the one it replaces."""
    global _current
    previous, _current = _current, clock
    return previous


@contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Run a block under ``clock``, then put the previous one back."""
    previous = install(clock)
    try:
        yield clock
    finally:
        install(previous)
