"""Template parameters: strings from a form or an API call, checked before any SQL exists.

Parameters arrive as text (``--param k=v``, a web form, a report definition),
in any script: every value goes through the category rule parties store their
data with (:func:`cleanroom.text.normalize_category`), so a step naming
``city=شيراز`` finds the data's ``شیراز``, and Persian digits read as digits.
Each getter parses one, checks it against its documented range, and refuses
with the parameter's name, the rule and the value sent — whole, with invisible
characters shown and bidi-isolated (:func:`cleanroom.text.quoted`), so a
Persian value renders right inside an English sentence. A value is at most
:data:`MAX_CHARS` characters long.

Dates are Gregorian (``2026-04-04``) or Solar Hijri (``1405-01-15``,
``۱۴۰۵/۰۱/۱۵``): a year from 1300 to 1499 is Solar Hijri, never Gregorian
(:mod:`cleanroom.jalali`), so no date can be read in both calendars.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from cleanroom import clock, jalali
from cleanroom.errors import T_, InternalError, Text
from cleanroom.room.analyses.schema import Kind, Param, schema
from cleanroom.room.query.check import QueryRejected
from cleanroom.text import EmptiedValue, fold_digits, normalize_category, quoted

MAX_CHARS = 500
_DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})$")
_MONTH = re.compile(r"^(\d{4})[-/](\d{1,2})$")


def _shown(value: str) -> str:
    return quoted(value)


def read_date(text: str) -> dt.date:
    """A Gregorian or Solar Hijri date (the module's rule); ``ValueError`` if neither."""
    found = _DATE.match(fold_digits(text.strip()))
    if found is None:
        raise ValueError(text)
    year, month, day = (int(g) for g in found.groups())
    if jalali.is_solar_hijri_year(year):
        return jalali.to_gregorian(year, month, day)
    return dt.date(year, month, day)


class Params:
    """A template's parameters, consumed one by one; leftovers are an error."""

    def __init__(self, template: str, raw: Mapping[str, str]) -> None:
        self.template = template
        self.used: set[str] = set()
        self.declared = schema(template)
        self.raw = {str(k): self._normal(str(k), str(v)) for k, v in raw.items()}

    def _normal(self, name: str, value: str) -> str:
        """The value in the spelling the data is stored in (see the module docstring)."""
        if len(value) > MAX_CHARS:
            raise self.reject(
                name,
                T_(
                    "is %(count)s characters long; the limit is %(max_chars)s",
                    count=len(value),
                    max_chars=MAX_CHARS,
                ),
            )
        try:
            return normalize_category(value)
        except EmptiedValue as err:
            raise self.reject(name, str(err)) from None

    def _declared(self, name: str, *kinds: Kind) -> Param:
        """The schema entry a getter reads; a getter the schema does not declare is our bug."""
        param = self.declared.get(name)
        if param is None or param.kind not in kinds:
            raise InternalError(
                f"{self.template}: parameter '{name}' is not declared as {'/'.join(kinds)} "
                "in cleanroom.room.analyses.schema"
            )
        return param

    def reject(self, name: str, reason: str | Text) -> QueryRejected:
        """The error for one parameter."""
        return QueryRejected(
            "bad_parameter",
            T_(
                "%(template)s: parameter '%(name)s' %(reason)s",
                template=self.template,
                name=name,
                reason=reason,
            ),
        )

    def text(self, name: str, default: str | None = None) -> str | None:
        """A raw value (stripped), or the default."""
        self._declared(name, "text", "step", "table", "brands", "steps", "integers")
        self.used.add(name)
        value = self.raw.get(name)
        return value.strip() if value is not None and value.strip() else default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number within [low, high] (as declared in the schema)."""
        param = self._declared(name, "integer")
        declared_default = None if param.default is None else int(param.default)
        if (param.low, param.high) != (low, high) or declared_default not in (None, default):
            raise InternalError(f"{self.template}: '{name}' is declared with another range")
        self.used.add(name)
        value = self.raw.get(name, "").strip() or None
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.reject(
                name, T_("must be a whole number, not %(value)s", value=_shown(value))
            ) from None
        if not low <= number <= high:
            raise self.reject(name, T_("must be between %(low)s and %(high)s", low=low, high=high))
        return number

    def date(self, name: str, default: dt.date) -> dt.date:
        """A date: Gregorian ``YYYY-MM-DD`` or Solar Hijri (a year 1300-1499), ``-`` or ``/``."""
        self._declared(name, "date")
        self.used.add(name)
        value = self.raw.get(name, "").strip() or None
        if value is None:
            return default
        try:
            return read_date(value)
        except ValueError:
            raise self.reject(
                name,
                T_(
                    "must be a date YYYY-MM-DD (Gregorian, or Solar Hijri with a year "
                    "1300-1499), not %(value)s",
                    value=_shown(value),
                ),
            ) from None

    def month(self, name: str, default: dt.date) -> dt.date:
        """A month (YYYY-MM), as its first day."""
        self._declared(name, "month")
        self.used.add(name)
        value = self.raw.get(name, "").strip() or None
        if value is None:
            return default.replace(day=1)
        found = _MONTH.match(value)
        if found is not None and jalali.is_solar_hijri_year(int(found.group(1))):
            raise self.reject(
                name,
                T_(
                    "counts Gregorian months; %(value)s is a Solar Hijri month (give the "
                    "Gregorian month, YYYY-MM)",
                    value=_shown(value),
                ),
            )
        try:
            if found is None:
                raise ValueError(value)
            return dt.date(int(found.group(1)), int(found.group(2)), 1)
        except ValueError:
            raise self.reject(
                name, T_("must be a month YYYY-MM, not %(value)s", value=_shown(value))
            ) from None

    def names(self, name: str) -> list[str] | None:
        """A comma-separated list of names, or None when absent."""
        value = self.text(name)
        if value is None:
            return None
        return [v.strip() for v in value.split(",") if v.strip()]

    def done(self) -> None:
        """Refuse parameters the template does not have."""
        unknown = set(self.raw) - self.used
        if unknown:
            shown = sorted(_shown(u) for u in unknown)
            known = ", ".join(self.declared)
            raise QueryRejected(
                "bad_parameter",
                T_(
                    "%(template)s has no parameter(s) %(shown)s (it takes %(known)s)",
                    template=self.template,
                    shown=", ".join(shown),
                    known=known,
                ),
            )


def period(params: Params, *, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """``start`` (inclusive) and ``end`` (exclusive) dates; by default the year up to today.

    The default comes from the calendar, never from the data, so it reveals nothing.
    """
    end = params.date("end", today or clock.now().date())
    start = params.date("start", end - dt.timedelta(days=365))
    if not start < end:
        raise params.reject("start", T_("must be before 'end'"))
    if (end - start).days > 3 * 366:
        raise params.reject("start", T_("and 'end' may span at most three years"))
    return start, end
