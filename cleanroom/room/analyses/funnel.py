"""``funnel``: persons reaching each of an ordered list of steps, each within a window of the last.

A step is a brand (``okala``), one of its datasets (``okala.orders``) or a
dataset with a declared dimension value (``okala.orders:channel=app``). A
person reaches step 1 at their first matching event in the period, and step
i+1 at their first matching event after reaching step i and within
``window_days`` of it. What is released is how many persons stopped at each
step (each person stops at exactly one, so one person moves that vector by
1), and the persons reaching each step are sums of it — post-processing, so
the whole funnel costs one count's epsilon; so is each step's conversion
from the one before (an interval from the two counts' intervals). Parameters: ``steps`` (2–6,
comma-separated), ``window_days`` (1–365, default 30), ``start``/``end``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom import accuracy
from cleanroom.errors import T_
from cleanroom.room import dp
from cleanroom.room.analyses.activity import Source, events_sql, require_own, step_source
from cleanroom.room.analyses.journey import (
    Cell,
    Journey,
    Vector,
    cells_of,
    count,
    sum_error95,
)
from cleanroom.room.analyses.params import Params, period
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.release import ratio
from cleanroom.room.sensitivity import once_per_cell
from cleanroom.sql import statement


@dataclass(frozen=True)
class Funnel(Journey):
    """Ordered steps and the persons who got through each."""

    labels: tuple[str, ...]
    steps: tuple[tuple[Source, ...], ...]
    window_days: int
    start: Any
    end: Any
    name = "funnel"

    @property
    def canonical(self) -> str:  # type: ignore[override]
        """The cache key's text."""
        return (
            f"template funnel steps={','.join(self.labels)} window={self.window_days}"
            f" period={self.start}..{self.end}"
        )

    def vectors(self) -> list[Vector]:
        """See :class:`Journey`: persons by the last step they reached."""
        return [
            Vector("stopped", tuple((i,) for i in range(1, len(self.steps) + 1)), once_per_cell(1))
        ]

    def exact(self, cursor: Any, tables: dict[str, str]) -> dict[str, dict[Cell, int]]:
        """See :class:`Journey`."""
        values: dict[str, object] = {}
        ctes = []
        for i, sources in enumerate(self.steps, start=1):
            events, step_values = events_sql(
                list(sources), tables, self.start, self.end, prefix=f"s{i}"
            )
            values.update(step_values)
            if i == 1:
                ctes.append(f"s1 AS (SELECT person, min(t) AS t FROM ({events}) GROUP BY person)")  # noqa: S608
                continue
            values["window"] = self.window_days
            ctes.append(
                f"s{i} AS (SELECT e.person, min(e.t) AS t FROM ({events}) e "  # noqa: S608
                f"JOIN s{i - 1} p ON e.person = p.person AND e.t > p.t "
                f"AND e.t <= p.t + to_days(CAST($window AS INTEGER)) GROUP BY e.person)"
            )
        reached = " UNION ALL ".join(
            f"SELECT person, {i} AS step FROM s{i}"  # noqa: S608
            for i in range(1, len(self.steps) + 1)
        )
        sql = (
            f"WITH {', '.join(ctes)} SELECT step, count(*) FROM "  # noqa: S608
            f"(SELECT person, max(step) AS step FROM ({reached}) GROUP BY person) GROUP BY step"
        )
        return {"stopped": cells_of(cursor, statement(sql, **values), 1)}

    def answer(
        self, noisy: dict[str, dp.Release], privacy: PrivacyPolicy
    ) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
        """See :class:`Journey`: step i is the sum of stops at i and later."""
        r = noisy["stopped"]
        n = len(self.steps)
        rows, suppressed = [], 0
        previous: tuple[int, float] | None = None
        for i in range(n):
            value, error = sum(r.values[i:]), sum_error95(r.error95, n - i)
            if value < privacy.min_noisy_persons:
                suppressed += 1
                previous = None
                continue
            row: dict[str, Any] = {
                "step": i + 1,
                "label": self.labels[i],
                "persons": count(value, error),
                "conversion": _conversion(i, value, error, previous),
            }
            rows.append(row)
            previous = (value, error)
        columns = ["step", "label", "persons", "conversion"]
        return columns, rows, suppressed, {"window_days": self.window_days}


def _conversion(
    i: int, value: int, error: float, previous: tuple[int, float] | None
) -> dict[str, Any] | None:
    """The share of the previous step that reached this one; None for the first step.

    After a step withheld under the minimum there is nothing to divide by, and the
    cell says which rule took its base away (never a silent blank).
    """
    if previous is not None:
        return ratio(value, error, *previous, 0, 1)
    if i == 0:
        return None
    return {"value": None, "withheld": accuracy.MIN_NOISY_PERSONS, "unit": accuracy.SHARE}


def prepare_funnel(params: Mapping[str, str], *, policy: CollaborationPolicy, party: str) -> Funnel:
    """Check the parameters (see the module docstring)."""
    p = Params("funnel", params)
    wanted = p.names("steps")
    if wanted is None or not 2 <= len(wanted) <= 6:
        raise p.reject("steps", T_("must list 2 to 6 steps, e.g. okala,ofogh"))
    steps = tuple(tuple(step_source(p, "steps", w, policy, party)) for w in wanted)
    require_own(p, "steps", sorted({s[0].party for s in steps}), policy, party)
    window = p.integer("window_days", 30, 1, 365)
    start, end = period(p)
    p.done()
    return Funnel(tuple(wanted), steps, window, start, end)
