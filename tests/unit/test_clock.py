"""The room's one clock: set by tests, restored after, refusing naive times."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from cleanroom import clock

NEW_YEAR_EVE = datetime(2027, 12, 31, 23, 59, tzinfo=UTC)


def test_a_set_clock_is_what_every_thread_reads() -> None:
    seen: list[datetime] = []
    with clock.use(clock.SetClock(NEW_YEAR_EVE)):
        worker = threading.Thread(target=lambda: seen.append(clock.now()))
        worker.start()
        worker.join()
        assert clock.now() == NEW_YEAR_EVE
        assert clock.stamp() == "2027-12-31T23:59:00+00:00"
    assert seen == [NEW_YEAR_EVE]
    assert clock.now() != NEW_YEAR_EVE  # the previous clock is back


def test_a_set_clock_moves_only_when_told() -> None:
    fixed = clock.SetClock(NEW_YEAR_EVE)
    with clock.use(fixed):
        time.sleep(0.01)
        assert clock.now() == NEW_YEAR_EVE
        fixed.advance(timedelta(minutes=2))
        assert clock.now().year == 2028 and clock.now().minute == 1


def test_a_ticking_clock_runs_on_from_where_it_was_put() -> None:
    ticking = clock.SetClock(NEW_YEAR_EVE, ticking=True)
    with clock.use(ticking):
        first = clock.now()
        time.sleep(0.02)
        second = clock.now()
    assert NEW_YEAR_EVE <= first < second < NEW_YEAR_EVE + timedelta(minutes=1)


def test_times_are_utc_and_never_naive() -> None:
    tehran = timezone(timedelta(hours=3, minutes=30))
    with clock.use(clock.SetClock(datetime(2028, 1, 1, 3, 29, tzinfo=tehran))):
        assert clock.now() == NEW_YEAR_EVE and clock.now().tzinfo == UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.SetClock(datetime(2027, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.stamp(datetime(2027, 1, 1))
