"""Numbers and dates for a reader: Persian digits and separators, Solar Hijri, the room's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jdatetime
from hypothesis import given
from hypothesis import strategies as st

from cleanroom import clock
from cleanroom.i18n import formats
from cleanroom.room.epsilon import Epsilon

BACK = str.maketrans("۰۱۲۳۴۵۶۷۸۹٬٫", "0123456789,.")


@given(st.one_of(st.integers(-(10**12), 10**12), st.floats(-1e9, 1e9, allow_nan=False)))
def test_a_persian_number_is_the_english_one_in_persian_digits_and_separators(value: float) -> None:
    english = formats.number(value, "en")
    persian = formats.number(value, "fa")
    assert not any(c.isascii() and c.isdigit() for c in persian)
    assert persian.translate(BACK) == english


def test_persian_separators_come_from_the_locale() -> None:
    assert formats.number(1234567, "fa") == "۱٬۲۳۴٬۵۶۷"
    assert formats.number(0.4, "fa") == "۰٫۴"
    assert formats.number(1234.56, "fa") == "۱٬۲۳۴٫۶"
    assert formats.number("okala", "fa") == "okala"  # a label is not a number


def test_nowruz_is_at_midnight_tehran_time() -> None:
    # The vernal equinox of 2026 falls on 20 March, 14:46 UTC; 1 Farvardin 1405 begins at
    # 00:00 in Tehran (UTC+3:30), i.e. 20:30 UTC on 20 March.
    assert formats.when("2026-03-20T20:29:00+00:00", "fa", "Asia/Tehran").startswith(
        "۱۴۰۴/۱۲/۲۹ ۲۳:۵۹"
    )
    assert formats.when("2026-03-20T20:30:00+00:00", "fa", "Asia/Tehran").startswith(
        "۱۴۰۵/۰۱/۰۱ ۰۰:۰۰"
    )
    assert formats.when("2026-03-20T20:30:00+00:00", "en", "Asia/Tehran") == (
        "2026-03-21 00:00 +0330"
    )


def test_reviewers_get_the_gregorian_date_beside_the_solar_hijri_one() -> None:
    text = formats.when("2026-12-01T10:00:00+00:00", "fa", "Asia/Tehran", gregorian=True)
    assert text.startswith("۱۴۰۵/۰۹/۱۰ ۱۳:۳۰ (۲۰۲۶-۱۲-۰۱)")


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)))
def test_the_solar_hijri_date_converts_back_to_the_same_day(at: datetime) -> None:
    zoned = at.replace(tzinfo=UTC)
    shown = formats.when(zoned.isoformat(), "fa", "Asia/Tehran").translate(BACK)
    year, month, day = (int(x) for x in shown.split()[0].split("/"))
    local = formats.local(zoned, "Asia/Tehran").date()
    assert jdatetime.date(year, month, day).togregorian() == local


def test_unparsable_or_missing_times_are_shown_as_they_are() -> None:
    assert formats.when(None, "fa", "Asia/Tehran") == "—"
    assert formats.when("soon", "fa", "Asia/Tehran") == "soon"


def test_age_reads_the_room_clock_in_each_language() -> None:
    at = datetime(2026, 5, 1, 12, tzinfo=UTC)
    with clock.use(clock.SetClock(at)):
        three_days = (at - timedelta(days=3, hours=1)).isoformat()
        assert formats.age(three_days, "en") == "3 days ago"
        assert formats.age(three_days, "fa") == "۳ روز پیش"
        assert formats.age((at - timedelta(seconds=5)).isoformat(), "fa") == "همین حالا"
        assert formats.age(None, "fa") == "هرگز"


def test_an_exact_epsilon_is_shown_as_its_decimal() -> None:
    assert formats.number(Epsilon("0.5"), "en") == "0.5"
    assert formats.number(Epsilon(2), "fa") == "۲"
