"""Numbers, dates and times as a reader of each language expects them.

Persian: Persian digits with the Persian thousands and decimal separators
(Babel's CLDR data for ``fa`` gives the separators; Babel leaves digits
ASCII, so they are mapped to U+06F0–U+06F9 here), and Solar Hijri dates
(``jdatetime``) in the room's time zone. English: Gregorian dates in the
room's time zone with its abbreviation. Stored times stay UTC ISO-8601;
only what a person reads changes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import jdatetime
from babel.numbers import get_decimal_symbol, get_group_symbol

from cleanroom import clock
from cleanroom.i18n import Language, translations

PERSIAN_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
DEFAULT_TIMEZONE = "Asia/Tehran"


def digits(text: str, language: Language) -> str:
    """ASCII digits in a language's own digits (Persian: ۰–۹)."""
    return text.translate(PERSIAN_DIGITS) if language == "fa" else text


def number(value: Any, language: Language) -> str:
    """A released or plain number: grouped thousands, a few significant digits, own digits.

    The shape is the same in every language (so a number reads the same in
    both); the separators are the locale's, from Babel's CLDR data.
    """
    if isinstance(value, Fraction):  # an exact epsilon: shown as its decimal
        value = int(value) if value.denominator == 1 else float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.1f}"
    else:
        text = f"{value:.4g}"
    return localized(text, language)


def localized(text: str, language: Language) -> str:
    """A number written the English way (``1,234.5``) in a language's separators and digits."""
    return text if language == "en" else _separators(language)(text)


@cache
def _separators(language: Language) -> Callable[[str], str]:
    group = get_group_symbol(language, numbering_system="default")
    decimal = get_decimal_symbol(language, numbering_system="default")
    table = str.maketrans({",": group, ".": decimal})

    def convert(text: str) -> str:
        return digits(text.translate(table), language)

    return convert


def parse_stamp(stamp: str | None) -> datetime | None:
    """An ISO-8601 time (naive means UTC), or None when it is not one."""
    if not stamp:
        return None
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def local(at: datetime, timezone: str) -> datetime:
    """A moment in the room's time zone."""
    return at.astimezone(ZoneInfo(timezone))


def jalali(at: datetime) -> str:
    """The Solar Hijri date of a (zoned) moment, ``1405/01/15``."""
    return str(jdatetime.date.fromgregorian(date=at.date()).strftime("%Y/%m/%d"))


def when(stamp: str | None, language: Language, timezone: str, *, gregorian: bool = False) -> str:
    """A moment for a reader: Persian ``۱۴۰۵/۰۱/۱۵ ۱۰:۰۰`` (Solar Hijri), English ISO-like.

    Both name the room's time zone. ``gregorian`` adds the Gregorian date
    beside a Solar Hijri one, for reviewers who compare it with other records.
    """
    at = parse_stamp(stamp)
    if at is None:
        return stamp or "—"
    there = local(at, timezone)
    if language != "fa":
        return there.strftime(f"%Y-%m-%d %H:%M {there.tzname() or timezone}")
    text = f"{jalali(there)} {there:%H:%M}"
    if gregorian:
        text += f" ({there:%Y-%m-%d})"
    return digits(f"{text} {_offset(there)}", language)


def _offset(at: datetime) -> str:
    """The UTC offset as ``+03:30`` in a left-to-right isolate (so its sign stays in front)."""
    offset = at.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"\u2066{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}\u2069"


def age(stamp: str | None, language: Language, now: datetime | None = None) -> str:
    """How long ago a moment was, in the largest whole unit, in the reader's language."""
    t = translations(language)
    at = parse_stamp(stamp)
    if stamp is None or stamp == "":
        return t.gettext("never")
    if at is None:
        return stamp
    seconds = int(((now or clock.now()) - at).total_seconds())
    if seconds >= 86_400:
        n = seconds // 86_400
        text = t.ngettext("%(num)d day ago", "%(num)d days ago", n) % {"num": n}
    elif seconds >= 3_600:
        n = seconds // 3_600
        text = t.ngettext("%(num)d hour ago", "%(num)d hours ago", n) % {"num": n}
    elif seconds >= 60:
        n = seconds // 60
        text = t.ngettext("%(num)d minute ago", "%(num)d minutes ago", n) % {"num": n}
    else:
        text = t.gettext("just now")
    return digits(text, language)
