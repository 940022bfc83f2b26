"""The Solar Hijri (Jalali) calendar: reading, converting and writing its dates.

Conversions are done by ``jdatetime`` (chosen over ``persiantools`` because it
mirrors the standard ``datetime`` API — ``jdatetime.date(y, m, d)``,
``togregorian()``, ``fromgregorian()`` — refuses impossible dates such as
30 Esfand of a common year, and has been maintained since 2010 with the
widest use of the two). This module is the only importer of it, so the rest
of the code sees ``datetime.date`` only.

**One rule keeps the calendars apart**: a year from 1300 to 1499 is a Solar
Hijri year, never a Gregorian one (1921–2121 AD in Solar Hijri; no customer
export or query of the room is about the years 1300–1499 AD). ``prepare``
refuses such a year in a Gregorian column, a template date parameter in that
range is read as Solar Hijri, and a ``calendar: jalali`` column refuses years
outside it.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import jdatetime

from cleanroom.text import PERSIAN_DIGITS, fold_digits

SOLAR_HIJRI_YEARS = range(1300, 1500)
MONTHS_FA = (
    "فروردین",
    "اردیبهشت",
    "خرداد",
    "تیر",
    "مرداد",
    "شهریور",
    "مهر",
    "آبان",
    "آذر",
    "دی",
    "بهمن",
    "اسفند",
)
_DATE = re.compile(r"^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})\s*$")


def is_solar_hijri_year(year: int) -> bool:
    """Whether a year is read as Solar Hijri by the module's rule."""
    return year in SOLAR_HIJRI_YEARS


def to_gregorian(year: int, month: int, day: int) -> dt.date:
    """The Gregorian date of a Solar Hijri one; ``ValueError`` if there is no such day."""
    if not is_solar_hijri_year(year):
        raise ValueError(f"{year} is not a Solar Hijri year this room reads (1300-1499)")
    result: dt.date = jdatetime.date(year, month, day).togregorian()
    return result


def from_gregorian(day: dt.date) -> tuple[int, int, int]:
    """(year, month, day) of a Gregorian date in the Solar Hijri calendar."""
    j = jdatetime.date.fromgregorian(date=day)
    return int(j.year), int(j.month), int(j.day)


def parse_date(text: str) -> dt.date:
    """``1405-01-15``, ``1405/1/15`` or ``۱۴۰۵/۰۱/۱۵`` (a Solar Hijri date) as a Gregorian date.

    ``ValueError`` if it is not one.
    """
    found = _DATE.match(fold_digits(text))
    if found is None:
        raise ValueError(f"{text!r} is not a date YYYY-MM-DD")
    year, month, day = (int(g) for g in found.groups())
    return to_gregorian(year, month, day)


def month_start(year: int, month: int) -> dt.date:
    """The Gregorian date of the first day of a Solar Hijri month (months past 12 roll over)."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return to_gregorian(year, month, 1)


def month_bounds(at: dt.datetime, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime, str]:
    """``[start, end)`` of the Solar Hijri month holding ``at`` in ``zone``, and ``YYYY-MM``.

    Both bounds are 00:00 in ``zone`` on the first day of a month, returned in UTC.
    """
    local = at.astimezone(zone).date()
    year, month, _ = from_gregorian(local)
    start = dt.datetime.combine(month_start(year, month), dt.time(), tzinfo=zone)
    end = dt.datetime.combine(month_start(year, month + 1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC), f"{year}-{month:02d}"


def persian_digits(text: str) -> str:
    """ASCII digits written as Persian digits (for display)."""
    return text.translate(str.maketrans("0123456789", PERSIAN_DIGITS))


def format_date(day: dt.date, *, digits: str = "latin", month_name: bool = False) -> str:
    """A Gregorian date written in the Solar Hijri calendar.

    ``1405-01-15``; with ``month_name``: ``15 فروردین 1405``; ``digits="persian"``
    writes Persian digits (``۱۴۰۵-۰۱-۱۵``). For the web UI and reports.
    """
    year, month, d = from_gregorian(day)
    text = f"{d} {MONTHS_FA[month - 1]} {year}" if month_name else f"{year}-{month:02d}-{d:02d}"
    return persian_digits(text) if digits == "persian" else text


def format_datetime(at: dt.datetime, zone: ZoneInfo, *, digits: str = "latin") -> str:
    """An instant as a Solar Hijri date and wall-clock time in ``zone`` (``1405-01-15 10:00``)."""
    local = at.astimezone(zone)
    text = f"{format_date(local.date())} {local:%H:%M}"
    return persian_digits(text) if digits == "persian" else text
