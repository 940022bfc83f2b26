"""The Solar Hijri calendar helpers: exact conversion and month bounds in the room's zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cleanroom import jalali

TEHRAN = ZoneInfo("Asia/Tehran")


@pytest.mark.parametrize(
    ("text", "gregorian"),
    [
        ("1405-01-01", dt.date(2026, 3, 21)),
        ("1405/01/15", dt.date(2026, 4, 4)),
        ("۱۴۰۵/۰۱/۱۵", dt.date(2026, 4, 4)),
        ("1403-12-30", dt.date(2025, 3, 20)),  # 1403 is a leap year
        ("1404-07-01", dt.date(2025, 9, 23)),
    ],
)
def test_parse_date(text: str, gregorian: dt.date) -> None:
    assert jalali.parse_date(text) == gregorian


@pytest.mark.parametrize("text", ["1404-12-30", "1405-13-01", "1405-07-31", "2026-01-01", "x"])
def test_impossible_or_foreign_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        jalali.parse_date(text)


@given(st.dates(min_value=dt.date(1922, 1, 1), max_value=dt.date(2120, 1, 1)))
def test_round_trip(day: dt.date) -> None:
    assert jalali.to_gregorian(*jalali.from_gregorian(day)) == day


def test_month_bounds_are_tehran_midnight_on_the_first() -> None:
    # 1405-02-01 is 2026-04-21; Tehran is UTC+3:30, so the month starts at 20:30 UTC the day before.
    at = dt.datetime(2026, 4, 21, 0, 0, tzinfo=dt.UTC)
    start, end, label = jalali.month_bounds(at, TEHRAN)
    assert label == "1405-02"
    assert start == dt.datetime(2026, 4, 20, 20, 30, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 5, 21, 20, 30, tzinfo=dt.UTC)  # 31 days later
    before = jalali.month_bounds(start - dt.timedelta(seconds=1), TEHRAN)
    assert before[2] == "1405-01" and before[1] == start


def test_esfand_rolls_into_the_next_year() -> None:
    start, end, label = jalali.month_bounds(dt.datetime(2026, 3, 10, tzinfo=dt.UTC), TEHRAN)
    assert label == "1404-12"
    assert end.astimezone(TEHRAN).date() == dt.date(2026, 3, 21)
    assert (end - start).days == 29  # 1404 is a common year


def test_format() -> None:
    assert jalali.format_date(dt.date(2026, 4, 4)) == "1405-01-15"
    assert jalali.format_date(dt.date(2026, 4, 4), digits="persian") == "۱۴۰۵-۰۱-۱۵"
    assert jalali.format_date(dt.date(2026, 4, 4), month_name=True) == "15 فروردین 1405"
    at = dt.datetime(2026, 4, 4, 6, 30, tzinfo=dt.UTC)
    assert jalali.format_datetime(at, TEHRAN) == "1405-01-15 10:00"
