"""Released numbers in a reader's language: rounded to their bound, marked, and the rules said.

The rules of reading (the mostly-noise flag, rounding to the bound, shares as
percentages, ranges instead of clamped values) are :mod:`cleanroom.accuracy`'s;
this module writes its readings in a language — Persian digits and
separators, the Persian percent sign — and the sentences around them (the
legend of the mark, which rule withheld or narrowed a cell, what a lift's
interval says) through the message catalogs. The web pages, the reports and
the command line all write numbers through it, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from babel import Locale

from cleanroom import accuracy
from cleanroom.i18n import N_, Language, formats, translations

MARK = "†"  # beside a number that is mostly noise; the legend says what it means

MOSTLY_NOISE = N_("mostly noise")
LEGEND_NOISE = N_(
    "† mostly noise: its 95%% error bound is as large as the number itself; "
    "read the interval, not the value."
)
LEGEND_ROUNDING = N_(
    "Numbers are rounded to what their error bound allows (≈ marks a rounded value); "
    "rates are percentages."
)
LEGEND_RANGE = N_(
    "“between … and …”: the noise covers most of the allowed range, or the estimate fell "
    "outside it and was cut at its edge; only the range is known."
)
BETWEEN = N_("between %(low)s and %(high)s")
POINTS = N_("%(number)s pp")
WITHHELD_CELL = N_("withheld (rule %(rule)s)")
RESTRICTED_CELL = N_("restricted by rule %(rule)s")
RULE_MINIMUM = N_(
    "%(cells)s group(s) withheld: their noisy person count was under the policy's minimum "
    "of %(threshold)s (rule min_noisy_persons)."
)
RULE_MINIMUM_UNKNOWN = N_(
    "%(cells)s group(s) withheld: their noisy person count was under the policy's minimum "
    "(rule min_noisy_persons)."
)
RULE_JOIN = N_(
    "Only persons of %(party)s are counted (rule join_required): %(cells)s combination(s) "
    "without %(party)s are not released, and pairwise figures count persons of %(party)s "
    "only, without rates."
)
RULE_OTHER = N_("%(cells)s cell(s) withheld or restricted (rule %(rule)s).")
EVIDENCE = {
    "none": N_("No evidence of an effect: the 95%% interval of the difference includes 0."),
    "treatment_higher": N_(
        "Treatment above control: the 95%% interval of the difference is above 0."
    ),
    "treatment_lower": N_(
        "Treatment below control: the 95%% interval of the difference is below 0."
    ),
}


@dataclass(frozen=True)
class Shown:
    """A cell's texts in one language, and its marks (for pages that style each part)."""

    kind: accuracy.Kind
    value: str
    error: str
    low: str
    high: str
    approx: bool
    mostly_noise: bool
    withheld: str | None
    restricted: str | None
    note: str  # the cell's rule, as text ("" when none)

    def text(self, language: Language) -> str:
        """The whole cell as one line: ``≈ 800,000 ± 1,600,000 †`` or a range or the rule."""
        t = translations(language)
        if self.kind == "estimate":
            body = f"{'≈ ' if self.approx else ''}{self.value} ± {self.error}"
        elif self.kind == "interval":
            body = f"{self.value} [{self.low}{comma(language)}{self.high}]"
        elif self.kind == "range":
            body = t.gettext(BETWEEN) % {"low": self.low, "high": self.high}
        else:
            body = "—"
        if self.mostly_noise and self.kind != "range":  # a range says it already
            body += f" {MARK}"
        return f"{body} ({self.note})" if self.note and self.kind != "none" else self.note or body


@cache
def percent_sign(language: Language) -> str:
    """CLDR's percent sign for the digits a language is written in (Persian digits: ٪)."""
    system = "arab" if language == "fa" else "latn"
    return str(Locale.parse(language).number_symbols[system]["percentSign"])


def comma(language: Language) -> str:
    """The list separator of a language."""
    return "، " if language == "fa" else ", "


def shown(cell: Mapping[str, Any], language: Language) -> Shown:
    """Read a released cell (see :func:`cleanroom.accuracy.read`) and write it in ``language``."""
    reading = accuracy.read(cell)
    t = translations(language)

    def write(text: str | None) -> str:
        if text is None:
            return ""
        local = formats.localized(text, language)
        if reading.percent:
            return local + percent_sign(language)
        if reading.points:
            return str(t.gettext(POINTS) % {"number": local})
        return local

    withheld = cell.get("withheld") if isinstance(cell.get("withheld"), str) else None
    restricted = cell.get("restricted") if isinstance(cell.get("restricted"), str) else None
    note = ""
    if withheld:
        note = t.gettext(WITHHELD_CELL) % {"rule": withheld}
    elif restricted:
        note = t.gettext(RESTRICTED_CELL) % {"rule": restricted}
    return Shown(
        reading.kind,
        write(reading.value),
        write(reading.error),
        write(reading.low),
        write(reading.high),
        reading.approx,
        reading.mostly_noise,
        withheld,
        restricted,
        note,
    )


def text(cell: Mapping[str, Any], language: Language) -> str:
    """A released cell as one line of text in ``language``."""
    return shown(cell, language).text(language)


def rule(
    entry: Mapping[str, Any], language: Language, names: Mapping[str, str] | None = None
) -> str:
    """One rule that withheld or narrowed cells, as a sentence (``names``: parties' names)."""
    t = translations(language)
    cells = formats.number(int(entry.get("cells") or 0), language)
    name = str(entry.get("rule", ""))
    if name == accuracy.MIN_NOISY_PERSONS:
        threshold = entry.get("threshold")
        if threshold is None:
            return str(t.gettext(RULE_MINIMUM_UNKNOWN) % {"cells": cells})
        limit = formats.number(threshold, language)
        return str(t.gettext(RULE_MINIMUM) % {"cells": cells, "threshold": limit})
    if name == accuracy.JOIN_REQUIRED:
        party = str(entry.get("party", ""))
        shown_party = f"\u2068{(names or {}).get(party, party)}\u2069"  # bidi-isolated
        return str(t.gettext(RULE_JOIN) % {"cells": cells, "party": shown_party})
    return str(t.gettext(RULE_OTHER) % {"cells": cells, "rule": name})


def evidence(value: object, language: Language) -> str | None:
    """What a lift's interval says, as a sentence (None when it released no difference)."""
    message = EVIDENCE.get(value) if isinstance(value, str) else None
    return str(translations(language).gettext(message) % {}) if message else None


def legend(language: Language, *, noise: bool = True, ranges: bool = False) -> list[str]:
    """The lines that explain the marks a table uses."""
    t = translations(language)
    lines = [t.gettext(LEGEND_ROUNDING)]
    if noise:
        lines.append(t.gettext(LEGEND_NOISE) % {})
    if ranges:
        lines.append(t.gettext(LEGEND_RANGE))
    return [str(line) for line in lines]


def marks(cells: list[Mapping[str, Any]]) -> tuple[bool, bool]:
    """Whether any of these cells is mostly noise, and whether any is shown as a range."""
    readings = [accuracy.read(c) for c in cells]
    noise = any(r.mostly_noise and r.kind != "range" for r in readings)
    return noise, any(r.kind == "range" for r in readings)


def cells_in(value: Any) -> list[Mapping[str, Any]]:
    """Every released cell inside a result's rows or figures."""
    if isinstance(value, Mapping):
        if accuracy.is_cell(value):
            return [value]
        return [c for v in value.values() for c in cells_in(v)]
    if isinstance(value, list):
        return [c for v in value for c in cells_in(v)]
    return []
