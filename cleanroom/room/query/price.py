"""A query's price in the analyst's terms: the cost, what is left, how many more fit.

A dry run's epsilon alone means little to an analyst; "this costs 0.1 of the
1.6 left to okala until 2026-12-01 — about 16 such queries" is what they plan
with. Pure arithmetic on the ledger's balance; nothing is charged here.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from cleanroom.errors import T_
from cleanroom.room.budget import BudgetStatus


def queries_left(epsilon: Fraction, left: Fraction) -> int:
    """How many queries of this cost the balance still pays (a cached answer costs nothing)."""
    return int(left // epsilon) if epsilon > 0 else 0


def outlook(party: str, epsilon: Fraction, status: BudgetStatus) -> dict[str, Any]:
    """The budget side of a dry run (see :class:`cleanroom.room.api.models.BudgetOutlook`)."""
    n = queries_left(epsilon, status.left)
    until = status.period_end[:10]
    values = {
        "cost": f"{float(epsilon):.4g}",
        "left": f"{float(status.left):.4g}",
        "party": party,
        "until": until,
        "n": n,
    }
    # Stored and sent in English (scripts read it); pages and the CLI show it translated.
    if n == 0:
        text = T_(
            "This query costs epsilon %(cost)s, more than the %(left)s left to %(party)s "
            "until %(until)s: it would be refused",
            **values,
        )
    elif n == 1:
        text = T_(
            "This query costs epsilon %(cost)s of the %(left)s left to %(party)s until "
            "%(until)s — about %(n)s such query",
            **values,
        )
    else:
        text = T_(
            "This query costs epsilon %(cost)s of the %(left)s left to %(party)s until "
            "%(until)s — about %(n)s such queries",
            **values,
        )
    sentence = str(text)
    return {
        "left": float(status.left),
        "period_end": status.period_end,
        "queries_left": n,
        "summary": sentence,
    }
