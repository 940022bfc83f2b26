"""Template parameters: strings from a form or an API call, checked before any SQL exists.

Parameters arrive as text (``--param k=v``, a web form, a report definition).
Each getter parses one, checks it against its documented range, and refuses
with the parameter's name and the rule — never echoing more than a short,
harmless prefix of what was sent, since a parameter is analyst-controlled text.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from cleanroom import clock
from cleanroom.errors import InternalError
from cleanroom.room.query.check import QueryRejected
from cleanroom.room.templates.schema import Kind, Param, schema

_SHORT = re.compile(r"^[A-Za-z0-9_.:=,\- ]{0,40}$")


def _shown(value: str) -> str:
    return value if _SHORT.match(value) else value[:12].encode("ascii", "replace").decode() + "…"


class Params:
    """A template's parameters, consumed one by one; leftovers are an error."""

    def __init__(self, template: str, raw: Mapping[str, str]) -> None:
        self.template = template
        self.raw = {str(k): str(v) for k, v in raw.items()}
        self.used: set[str] = set()
        self.declared = schema(template)

    def _declared(self, name: str, *kinds: Kind) -> Param:
        """The schema entry a getter reads; a getter the schema does not declare is our bug."""
        param = self.declared.get(name)
        if param is None or param.kind not in kinds:
            raise InternalError(
                f"{self.template}: parameter '{name}' is not declared as {'/'.join(kinds)} "
                "in cleanroom.room.templates.schema"
            )
        return param

    def reject(self, name: str, reason: str) -> QueryRejected:
        """The error for one parameter."""
        return QueryRejected("bad_parameter", f"{self.template}: parameter '{name}' {reason}")

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
            raise self.reject(name, f"must be a whole number, not '{_shown(value)}'") from None
        if not low <= number <= high:
            raise self.reject(name, f"must be between {low} and {high}")
        return number

    def date(self, name: str, default: dt.date) -> dt.date:
        """An ISO date (YYYY-MM-DD)."""
        self._declared(name, "date")
        self.used.add(name)
        value = self.raw.get(name, "").strip() or None
        if value is None:
            return default
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise self.reject(name, f"must be a date YYYY-MM-DD, not '{_shown(value)}'") from None

    def month(self, name: str, default: dt.date) -> dt.date:
        """A month (YYYY-MM), as its first day."""
        self._declared(name, "month")
        self.used.add(name)
        value = self.raw.get(name, "").strip() or None
        if value is None:
            return default.replace(day=1)
        try:
            return dt.date.fromisoformat(value + "-01")
        except ValueError:
            raise self.reject(name, f"must be a month YYYY-MM, not '{_shown(value)}'") from None

    def names(self, name: str) -> list[str] | None:
        """A comma-separated list of names, or None when absent."""
        value = self.text(name)
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        for item in items:
            if not _SHORT.match(item):
                raise self.reject(name, f"has an invalid entry '{_shown(item)}'")
        return items

    def done(self) -> None:
        """Refuse parameters the template does not have."""
        unknown = set(self.raw) - self.used
        if unknown:
            shown = sorted(_shown(u) for u in unknown)
            known = ", ".join(self.declared)
            raise QueryRejected(
                "bad_parameter",
                f"{self.template} has no parameter(s) {', '.join(shown)} (it takes {known})",
            )


def period(params: Params, *, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """``start`` (inclusive) and ``end`` (exclusive) dates; by default the year up to today.

    The default comes from the calendar, never from the data, so it reveals nothing.
    """
    end = params.date("end", today or clock.now().date())
    start = params.date("start", end - dt.timedelta(days=365))
    if not start < end:
        raise params.reject("start", "must be before 'end'")
    if (end - start).days > 3 * 366:
        raise params.reject("start", "and 'end' may span at most three years")
    return start, end
