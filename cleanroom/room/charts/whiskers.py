"""What one bar shows for a released cell: the one interval rule of every chart (console, reports).

A chart must say what the table beside it says, so the bar and its whisker
are read from the cell by the same rules as its text
(:func:`cleanroom.accuracy.read`) and its CSV columns
(:func:`cleanroom.room.reports.cells.interval`):

- **the whisker is the released 95% interval, end for end**: ``[low, high]``
  when the cell carries them, else ``value ± error95``. No end is moved. A
  count whose lower end falls below 0 is drawn below the zero line, as its
  ``±`` says: cutting it at 0 would draw a narrower interval than the table,
  the CSV and the API state (and a sum of a signed metric may truly be
  negative, so "non-negative" cannot be guessed from the number). A count's
  end reaches below 0 only when the count is mostly noise, so that bar always
  carries the mark below;
- **mostly noise** (``|value| <= error95``): bar and whisker, and the † mark
  with a footnote that says to read the interval, not the bar;
- **only a range** (an average with no usable count, an estimate clamped at
  the edge of its allowed range, an interval covering most of that range):
  the whisker without a bar — the table prints no value for it either — and
  the ↔ mark with its footnote;
- **withheld** (by a rule, or released without any bound): an empty slot
  marked "n/a", so a missing bar is never read as a zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cleanroom import accuracy
from cleanroom.i18n import N_
from cleanroom.room.reports.cells import interval, is_cell, number

Mark = Literal["", "noise", "range", "withheld"]

NOISE_MARK = "†"  # the tables' mark (cleanroom.i18n.released.MARK)
RANGE_MARK = "↔"
WITHHELD_MARK = N_("n/a")

FOOTNOTES: dict[Mark, str] = {
    "noise": N_(
        "† mostly noise: the 95%% interval reaches 0 (a count's may go below it); "
        "read the whisker, not the bar"
    ),
    "range": N_("↔ only the range is known: a whisker without a bar, as the table gives no value"),
    "withheld": N_("n/a: not released (withheld by a rule, or without an error bound)"),
}


@dataclass(frozen=True)
class Whisker:
    """One bar: its length (None: no bar), its 95% interval's ends (None: withheld), its mark."""

    value: float | None
    low: float | None
    high: float | None
    mark: Mark

    @property
    def centre(self) -> float | None:
        """Where the whisker is anchored: the value, or a bare range's middle."""
        if self.low is None or self.high is None:
            return None
        return self.value if self.value is not None else (self.low + self.high) / 2


WITHHELD = Whisker(None, None, None, "withheld")


def whisker(cell: object) -> Whisker:
    """The bar of one released cell (see the module docstring)."""
    if not is_cell(cell):
        return WITHHELD
    assert isinstance(cell, dict)
    reading = accuracy.read(cell)
    ends = interval(cell)
    if reading.kind == "none" or ends is None:
        return WITHHELD
    low, high = ends
    if reading.kind == "range":
        return Whisker(None, low, high, "range")
    value = number(cell.get("value"))
    if value is None:  # pragma: no cover - read() calls a cell without a value a range
        return Whisker(None, low, high, "range")
    return Whisker(value, low, high, "noise" if reading.mostly_noise else "")
