"""A section's numbers as tables: the released rows, and the template's derived figures.

One :class:`Table` feeds both the HTML page (as text with bounds) and a CSV
file (as value / error95 / low / high columns), so the two cannot disagree.
Templates this module does not know still get their rows and any list- or
mapping-shaped extras as tables; a figure that arrives without an error bound
is left out of the page (it stays in ``results.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cleanroom.accuracy import RESULT_ENVELOPE
from cleanroom.i18n.current import _, brands_in
from cleanroom.i18n.labels import WORDS
from cleanroom.room.reports.cells import (
    flatten,
    is_cell,
    label,
    number,
    rate_interval,
    show,
)


@dataclass(frozen=True)
class Shown:
    """One cell of an HTML table: a label (row header) or a number with its bound."""

    text: str
    is_label: bool


@dataclass(frozen=True)
class Table:
    """Rows of labels and released cells, named for its CSV file."""

    name: str  # "" for the section's main table, else the extra's key
    caption: str
    columns: list[str]
    rows: list[dict[str, Any]]

    def shown(self) -> list[list[Shown]]:
        """Every row as text: labels as they are, numbers with ± or [low, high]."""
        return [
            [
                Shown(show(row[c]), False)
                if is_cell(row.get(c))
                else Shown(label(row.get(c)), True)
                for c in self.columns
            ]
            for row in self.rows
        ]

    def csv_rows(self) -> tuple[list[str], list[dict[str, object]]]:
        """Header and rows: each number as value, error95, low and high columns."""
        header: list[str] = []
        out = []
        for row in self.rows:
            flat: dict[str, object] = {}
            for column in self.columns:
                flat.update(flatten(column, row.get(column)))
            for key in flat:
                if key not in header:
                    header.append(key)
            out.append(flat)
        if not out:
            header = list(self.columns)
        return header, out


def tables_for(template: str, result: dict[str, Any]) -> list[Table]:
    """The main table, then one table per extra figure the template released."""
    columns = [str(c) for c in result.get("columns", [])]
    caption = _("released groups")
    tables = [Table("", caption, columns, list(result.get("rows", [])))]
    for key, extra in result.items():
        if key in RESULT_ENVELOPE:
            continue
        shaped = (
            _pairwise(extra, result) if key == "pairwise" and isinstance(extra, list) else extra
        )
        table = _extra_table(key, shaped)
        if table is not None:
            tables.append(table)
    return tables


def _extra_table(key: str, extra: object) -> Table | None:
    caption = brands_in(key) if key in WORDS else key  # an unknown key is shown as data
    if isinstance(extra, dict) and any(is_cell(v) for v in extra.values()):
        # e.g. lift: {"difference": cell, "relative": cell or None when it has no meaning}
        rows = [
            {"measure": name, "estimate": cell} for name, cell in extra.items() if is_cell(cell)
        ]
        return Table(key, caption, ["measure", "estimate"], rows)
    if isinstance(extra, list) and extra and all(isinstance(r, dict) for r in extra):
        columns: list[str] = []
        for row in extra:
            columns += [c for c in row if c not in columns]
        # A bare number has no bound: such a column stays in results.json only.
        keep = [c for c in columns if not any(number(r.get(c)) is not None for r in extra)]
        if not any(is_cell(r.get(c)) for r in extra for c in keep):
            return None
        return Table(key, caption, keep, extra)
    return None


def _pairwise(pairs: list[Any], result: dict[str, Any]) -> list[Any]:
    """Give each pairwise rate an interval when the template released a point value only."""
    cell_errors = [
        number(row["persons"].get("error95"))
        for row in result.get("rows", [])
        if isinstance(row, dict) and is_cell(row.get("persons"))
    ]
    cell_error = max((e for e in cell_errors if e is not None), default=None)
    cells = len(result.get("rows", [])) + int(result.get("suppressed_groups") or 0)
    out = []
    for pair in pairs:
        rate = number(pair.get("rate")) if isinstance(pair, dict) else None
        if rate is not None and cell_error is not None and is_cell(pair.get("both")):
            out.append({**pair, "rate": rate_interval(rate, pair["both"], cell_error, cells)})
        else:
            out.append(pair)
    return out
