"""The language of the report being written, for code far from the request (charts, tables).

A report run is written in one language (setting ``language``); rather than
pass it through every chart function, :func:`use` sets it for the current
thread or task (a ``ContextVar``, so concurrent runs never mix) and
:func:`_` translates in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from cleanroom.i18n import N_, Language, translations
from cleanroom.i18n.labels import WORDS

# The bins time_to_cross releases (data, English in results): shown translated.
DAYS = N_("%(low)s-%(high)s days")
OPEN_DAYS = N_("%(low)s+ days")
_DAYS_BIN = re.compile(r"^([0-9۰-۹]+)(?:-([0-9۰-۹]+)|\+) days$")

_language: ContextVar[Language] = ContextVar("cleanroom_language", default="en")
_names: ContextVar[dict[str, str] | None] = ContextVar("cleanroom_brand_names", default=None)


@contextmanager
def use(language: Language, brand_names: dict[str, str] | None = None) -> Iterator[None]:
    """Write in ``language`` (and show brands by these display names) inside the block."""
    token = _language.set(language)
    names = _names.set(brand_names)
    try:
        yield
    finally:
        _language.reset(token)
        _names.reset(names)


def language() -> Language:
    """The language being written."""
    return _language.get()


def _(message: str) -> str:
    """A message in the language being written."""
    return translations(_language.get()).gettext(message)


def brands_in(text: str) -> str:
    """A label as people read it: a declared word translated, party ids by display name.

    ``okala``, ``okala.orders``, ``okala+ofogh``: every party id in a label is
    replaced, for charts and tables read by people (CSV and JSON keep ids).
    """
    return display(text, _language.get(), _names.get())


def display(text: str, language: Language, names: dict[str, str] | None) -> str:
    """:func:`brands_in` for an explicit language and display names (web pages)."""
    if text in WORDS and language != "en":  # a declared word (segment, arm): translated
        return translations(language).gettext(WORDS[text])
    days = _DAYS_BIN.match(text)
    if days is not None and language != "en":  # a time_to_cross bin: "7-14 days", "90+ days"
        own = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
        low, high = days.group(1).translate(own), (days.group(2) or "").translate(own) or None
        if high is None:
            return translations(language).gettext(OPEN_DAYS) % {"low": low}
        return translations(language).gettext(DAYS) % {"low": low, "high": high}
    if not names:
        return text
    pattern = _pattern(tuple(sorted(names, key=len, reverse=True)))
    return pattern.sub(lambda m: names.get(m.group(0), m.group(0)), text)


@cache
def _pattern(parties: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w])(?:" + "|".join(map(re.escape, parties)) + r")(?![\w])")


def names() -> dict[str, str]:
    """The display names of the parties being written with (empty when none were given)."""
    return dict(_names.get() or {})


def brand(party: str) -> str:
    """A party's display name in the language being written (its id when it has none)."""
    return (_names.get() or {}).get(party, party)
