"""Sensitivities, derived in one place from the explicit per-person bounds.

Every released vector — a template's cells, a SQL query's per-group column —
is noised to how much one person can move it: its L1 sensitivity for Laplace
noise, its L2 for Gaussian. Both follow from one description of a person's
worst contribution (:class:`Contribution`): in how many cells they can be,
how much they can move one cell, and how much all cells together. The L2 is
*not* √L1 in general: √L1 holds only when each cell moves by at most one; a
person whose whole spend can land in one cell moves that cell, and the L2, by
the whole cap. Deriving both here, from the same three numbers, keeps the two
from drifting apart.

The bounds only hold if the SQL enforces them: values clamped on *both*
sides (a metric with a negative lower bound is a refund, and a refund is as
large a change as a purchase), and a missing value left missing — DuckDB's
``greatest(NULL, lo)`` is ``lo``, so a naive clamp turns "no value" into the
lower bound, which SUM then adds while COUNT(column) skips it.
:func:`clamp` is the one clamp the engine and the templates use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlglot import exp

from cleanroom import sql


@dataclass(frozen=True)
class Contribution:
    """One person's largest effect on one released vector.

    ``cells``: how many cells they can change at all; ``per_cell``: by how
    much (absolute value) at most in any one cell; ``total``: by how much at
    most over all cells together (the sum of the absolute changes), when that
    is less than ``cells * per_cell``.
    """

    cells: int
    per_cell: float
    total: float | None = None

    def __post_init__(self) -> None:
        if self.cells < 1 or not self.per_cell > 0 or not math.isfinite(self.per_cell):
            raise ValueError(f"a contribution needs cells >= 1 and 0 < per_cell < inf: {self}")
        if self.total is not None and not 0 < self.total < math.inf:
            raise ValueError(f"a contribution's total must be positive and finite: {self}")

    @property
    def l1(self) -> float:
        """The most one person moves the vector in L1: every cell they touch, fully."""
        full = self.cells * self.per_cell
        return full if self.total is None else min(full, self.total)

    @property
    def l2(self) -> float:
        """The most they move it in L2: the L1 concentrated in as few cells as the cap allows.

        Maximizing Σx² under 0 ≤ x ≤ per_cell and Σx ≤ L1 fills whole cells
        first (a convex function is largest at a vertex): ``q`` full cells and
        the remainder in one more.
        """
        budget = self.l1
        full = min(self.cells, math.floor(budget / self.per_cell))
        rest = max(0.0, budget - full * self.per_cell)
        return math.sqrt(full * self.per_cell**2 + rest**2)


def once_per_cell(cells: int) -> Contribution:
    """A person counted at most once in each of at most ``cells`` cells (L1 = cells, L2 = √)."""
    return Contribution(cells=max(1, cells), per_cell=1)


def rows(k: int, cells: int) -> Contribution:
    """At most ``k`` rows of one person counted, spread over at most ``cells`` cells."""
    return Contribution(cells=max(1, min(k, cells)), per_cell=k, total=k)


def spread(lower: float, upper: float) -> float:
    """The most one value clamped to ``[lower, upper]`` is away from zero (its absence)."""
    if not lower <= upper:
        raise ValueError(f"bounds must be [lower, upper]: {lower}, {upper}")
    return max(abs(lower), abs(upper))


def metric_sum(k: int, lower: float, upper: float, cells: int) -> Contribution:
    """SUM of at most ``k`` of a person's values, each clamped to ``[lower, upper]``.

    All ``k`` may fall in one cell, so one cell moves by ``k · max(|lower|, |upper|)``
    — which is also the total over all cells.
    """
    most = k * spread(lower, upper)
    return Contribution(cells=max(1, min(k, cells)), per_cell=most, total=most)


def bounded_total(lower: float, upper: float, cells: int = 1) -> Contribution:
    """A per-person total clamped to ``[lower, upper]``, added to at most ``cells`` cells."""
    return Contribution(cells=max(1, cells), per_cell=spread(lower, upper))


def cut_volume(bound: int, cap: int) -> Contribution:
    """``[kept, cut]`` of one person under a per-person bound (the cut disclosure).

    They keep at most ``bound`` units and their excess over it is counted up
    to ``cap``, so one person moves the pair by at most ``bound`` in one cell,
    ``cap`` in the other, ``bound + cap`` together (L2: both cells full).
    """
    return Contribution(cells=2, per_cell=max(bound, cap), total=bound + cap)


def clamp(value: exp.Expr, lower: float, upper: float) -> exp.Expr:
    """``value`` clamped to ``[lower, upper]``, NULL staying NULL, as an SQL tree.

    ``least``/``greatest`` skip NULL arguments in DuckDB and Spark, so without
    the CASE a missing value would become the lower bound.
    """
    lo, hi = _bound(lower), _bound(upper)
    inner = exp.func("least", exp.func("greatest", value.copy(), lo), hi)
    case = exp.Case(
        ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.null()), true=exp.null())]
    )
    return exp.paren(case.else_(inner, copy=False), copy=False)


def clamp_sql(column: str, lower: float, upper: float, *, table: str | None = None) -> str:
    """:func:`clamp` of the room's column ``table.column``, as DuckDB text for a template."""
    return clamp(sql.column(column, table), lower, upper).sql(dialect="duckdb")


def _bound(x: float) -> exp.Expr:
    if not math.isfinite(x):
        raise ValueError(f"a clamp bound must be finite, not {x!r}")
    return sql.literal(int(x) if float(x).is_integer() else float(x))
