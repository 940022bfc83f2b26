"""A query's price in the analyst's terms: the cost, what is left, how many more fit.

A dry run's epsilon alone means little to an analyst; "this costs 0.1 of the
1.6 left to okala until 2026-12-01 — about 16 such queries" is what they plan
with. Pure arithmetic on the ledger's balance; nothing is charged here.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from cleanroom.room.budget import BudgetStatus


def queries_left(epsilon: Fraction, left: Fraction) -> int:
    """How many queries of this cost the balance still pays (a cached answer costs nothing)."""
    return int(left // epsilon) if epsilon > 0 else 0


def outlook(party: str, epsilon: Fraction, status: BudgetStatus) -> dict[str, Any]:
    """The budget side of a dry run (see :class:`cleanroom.room.api.models.BudgetOutlook`)."""
    n = queries_left(epsilon, status.left)
    until = status.period_end[:10]
    if n == 0:
        sentence = (
            f"This query costs epsilon {float(epsilon):.4g}, more than the "
            f"{float(status.left):.4g} left to {party} until {until}: it would be refused"
        )
    else:
        such = "query" if n == 1 else "queries"
        sentence = (
            f"This query costs epsilon {float(epsilon):.4g} of the {float(status.left):.4g} "
            f"left to {party} until {until} — about {n} such {such}"
        )
    return {
        "left": float(status.left),
        "period_end": status.period_end,
        "queries_left": n,
        "summary": sentence,
    }
