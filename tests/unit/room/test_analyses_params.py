"""Template parameters: any script, the parties' spelling, Solar Hijri dates, whole quotes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cleanroom import jalali
from cleanroom.room.analyses.params import MAX_CHARS, Params, read_date
from cleanroom.room.query.check import QueryRejected


def params(**raw: str) -> Params:
    return Params("funnel", raw)


def test_values_are_normalized_like_the_data() -> None:
    p = params(steps="okala.orders:city=شيراز , كرمان")
    assert p.names("steps") == ["okala.orders:city=شیراز", "کرمان"]


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("2026-04-04", dt.date(2026, 4, 4)),
        ("1405-01-15", dt.date(2026, 4, 4)),
        ("۱۴۰۵/۰۱/۱۵", dt.date(2026, 4, 4)),
        ("1405/1/15", dt.date(2026, 4, 4)),
        ("2026/04/04", dt.date(2026, 4, 4)),
    ],
)
def test_dates_gregorian_or_solar_hijri(text: str, date: dt.date) -> None:
    assert params(start=text).date("start", dt.date(2000, 1, 1)) == date


@given(st.dates(min_value=dt.date(1921, 3, 21), max_value=dt.date(2121, 3, 20)))
def test_a_date_is_never_read_in_both_calendars(day: dt.date) -> None:
    # Written in Solar Hijri it reads back as itself; written in Gregorian, too.
    assert read_date(jalali.format_date(day)) == day
    if not jalali.is_solar_hijri_year(day.year):
        assert read_date(day.isoformat()) == day


@pytest.mark.parametrize("text", ["1404-12-30", "1405-13-01", "2026-02-30", "tomorrow"])
def test_impossible_dates_are_refused_quoting_the_value(text: str) -> None:
    with pytest.raises(QueryRejected, match="must be a date") as err:
        params(start=text).date("start", dt.date(2000, 1, 1))
    assert f"'\u2068{text}\u2069'" in err.value.message


def test_a_solar_hijri_month_is_refused_for_a_gregorian_month_parameter() -> None:
    p = Params("retention", {"start": "1405-01"})
    with pytest.raises(QueryRejected, match="Solar Hijri month"):
        p.month("start", dt.date(2026, 1, 1))


def test_refusals_quote_the_whole_value_bidi_isolated() -> None:
    long = "تهران" * 40  # 200 characters: quoted whole, not cut
    with pytest.raises(QueryRejected) as err:
        params(window_days=long).integer("window_days", 30, 1, 365)
    assert f"not '\u2068{long}\u2069'" in err.value.message
    # A bidi override in a value is removed by normalization; in a name it is shown.
    assert params(window_days="1\u202e2").integer("window_days", 30, 1, 365) == 12
    with pytest.raises(QueryRejected, match="<U\\+202E>"):
        params(**{"window\u202e_days": "3"}).done()


def test_overlong_and_emptied_values_are_refused() -> None:
    with pytest.raises(QueryRejected, match=f"the limit is {MAX_CHARS}"):
        params(steps="x" * (MAX_CHARS + 1))
    with pytest.raises(QueryRejected, match="only marks"):
        params(steps="ـــ")
