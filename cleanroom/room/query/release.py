"""From exact bounded aggregates to the released table: noise, thresholds, error bounds.

Everything here is post-processing of OpenDP releases (``cleanroom.room.dp``):
every declared key gets a value (a key with no rows is a noisy zero, so the
absence of a group is not a signal), groups whose noisy person count is under
the policy's minimum are withheld, AVG is a noisy sum over a noisy count, and
each number carries the 95% half-width of its noise.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cleanroom import accuracy
from cleanroom.room import dp
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.compile import Compiled, Measurement, integer_bounds
from cleanroom.room.query.plan import Aggregate, QueryPlan


@dataclass(frozen=True)
class Released:
    """The public result of one query."""

    columns: list[str]
    rows: list[dict[str, Any]]
    suppressed: int
    epsilon: Fraction
    delta: float
    extra: dict[str, Any] = field(default_factory=dict)  # derived figures (post-processing)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "columns": self.columns,
            "rows": self.rows,
            "suppressed_groups": self.suppressed,
            "epsilon": str(self.epsilon),
            "epsilon_float": float(self.epsilon),
            "delta": self.delta,
            **self.extra,
        }


def noise(
    values: list[int],
    *,
    l1: float,
    l2: float,
    epsilon: Fraction,
    privacy: PrivacyPolicy,
    delta: float,
) -> dp.Release:
    """One vector through the policy's mechanism, calibrated to its L1 or L2 sensitivity."""
    if privacy.mechanism == "gaussian":
        return dp.gaussian_release(values, l2_sensitivity=l2, epsilon=epsilon, delta=delta)
    return dp.laplace_release(values, l1_sensitivity=math.ceil(l1), epsilon=epsilon)


def _mechanism(
    m: Measurement, values: list[int], epsilon: Fraction, privacy: PrivacyPolicy, delta: float
) -> dp.Release:
    return noise(values, l1=m.l1, l2=m.l2, epsilon=epsilon, privacy=privacy, delta=delta)


def ratio(
    total: float,
    total_error: float,
    count: float,
    count_error: float,
    lo: float,
    hi: float,
    *,
    unit: str | None = None,
) -> dict[str, Any]:
    """A noisy total over a noisy count, with interval arithmetic on the two 95% intervals.

    The estimate is clamped to [lo, hi], and a clamped estimate says so
    (``clamped``): a negative noisy sum clamped to 0 is not an exact 0. When
    the count's interval reaches zero, or the interval covers most (half or
    more) of [lo, hi], the answer is only a range (``range_only``: shown as
    the range, never as a point). With no usable count the answer is only
    the bounds themselves (value None). ``unit``: ``share`` for a proportion
    (the default when [lo, hi] is [0, 1]), else ``mean``.
    """
    kind = unit or (accuracy.SHARE if (lo, hi) == (0, 1) else accuracy.MEAN)
    if count <= 0:
        return {
            "value": None, "low": lo, "high": hi, "error95": None, "unit": kind,
            "range_only": True,
        }  # fmt: skip
    raw = total / count
    value = min(max(raw, lo), hi)
    usable = count - count_error > 0
    if usable:
        ends = [
            (total + ds) / (count + dn)
            for ds in (-total_error, total_error)
            for dn in (-count_error, count_error)
        ]
        low, high = max(lo, min(ends)), min(hi, max(ends))
    else:
        low, high = lo, hi
    # Clamping can push the point estimate outside a very noisy interval: widen it back.
    low, high = min(low, value), max(high, value)
    out: dict[str, Any] = {
        "value": round(value, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "error95": round(max(value - low, high - value), 4),
        "unit": kind,
    }
    if raw != value:
        out["clamped"] = True
    if not usable or (hi > lo and high - low >= (hi - lo) / 2):
        out["range_only"] = True
    return out


def release(
    plan: QueryPlan,
    compiled: Compiled,
    exact: list[tuple[Any, ...]],
    *,
    epsilon: Fraction,
    privacy: PrivacyPolicy,
) -> Released:
    """Noise every measurement over the full key grid, then build the answer rows."""
    grid = list(itertools.product(*(key.domain for key in plan.group_by)))
    position = {key: i for i, key in enumerate(grid)}
    n_keys = len(compiled.keys)
    vectors = {m.name: [0] * len(grid) for m in compiled.measurements}
    for record in exact:
        i = position.get(tuple(record[:n_keys]))
        if i is None:  # cannot happen: the SQL keeps declared keys only
            continue
        for j, m in enumerate(compiled.measurements):
            vectors[m.name][i] = int(record[n_keys + j] or 0)
    parts = dp.split(epsilon, len(compiled.measurements))
    delta_each = (privacy.delta or 0.0) / len(compiled.measurements)
    noisy = {
        m.name: _mechanism(m, vectors[m.name], part, privacy, delta_each)
        for m, part in zip(compiled.measurements, parts, strict=True)
    }
    persons = noisy.get("m_persons")  # measured whenever the policy sets a minimum
    columns = [key.output for key in plan.group_by] + [a.output for a in plan.aggregates]
    rows: list[dict[str, Any]] = []
    suppressed = 0
    for i, key in enumerate(grid):
        if persons is not None and persons.values[i] < privacy.min_noisy_persons:
            suppressed += 1
            continue
        row: dict[str, Any] = {k.output: v for k, v in zip(plan.group_by, key, strict=True)}
        for agg in plan.aggregates:
            row[agg.output] = _value(agg, i, noisy)
        rows.append(row)
    spent = sum((r.epsilon for r in noisy.values()), Fraction(0))
    return Released(columns, rows, suppressed, spent, sum(r.delta for r in noisy.values()))


def _value(agg: Aggregate, i: int, noisy: dict[str, dp.Release]) -> dict[str, Any]:
    if agg.kind in ("count", "count_persons"):
        r = noisy["m_count" if agg.kind == "count" else "m_persons"]
        return {"value": max(0, r.values[i]), "error95": round(r.error95, 2)}
    assert agg.column is not None and agg.bounds is not None
    col = f"{agg.column.table}__{agg.column.column}"
    s = noisy[f"m_sum__{col}"]
    if agg.kind == "sum":
        return {"value": s.values[i], "error95": round(s.error95, 2)}
    n = noisy[f"m_n__{col}"]
    lo, hi = integer_bounds(agg.bounds)
    return ratio(s.values[i], s.error95, n.values[i], n.error95, lo, hi, unit=accuracy.MEAN)


def preview(
    plan: QueryPlan, ms: list[Measurement], *, epsilon: Fraction, privacy: PrivacyPolicy
) -> dict[str, Any]:
    """A dry run: what the query would cost and how accurate each number would be."""
    parts = dp.split(epsilon, len(ms))
    delta_each = (privacy.delta or 0.0) / len(ms)
    errors = {}
    for m, part in zip(ms, parts, strict=True):
        sensitivity = m.l2 if privacy.mechanism == "gaussian" else math.ceil(m.l1)
        errors[m.name] = dp.expected_error95(privacy.mechanism, sensitivity, part, delta_each)
    per_aggregate = {}
    for agg in plan.aggregates:
        if agg.kind == "count":
            per_aggregate[agg.output] = {"error95": round(errors["m_count"], 2)}
        elif agg.kind == "count_persons":
            per_aggregate[agg.output] = {"error95": round(errors["m_persons"], 2)}
        else:
            col = f"{agg.column.table}__{agg.column.column}" if agg.column else ""
            entry = {"error95": round(errors[f"m_sum__{col}"], 2)}
            if agg.kind == "avg":
                entry = {
                    "sum_error95": entry["error95"],
                    "count_error95": round(errors[f"m_n__{col}"], 2),
                }
            per_aggregate[agg.output] = entry
    return {
        "epsilon": str(epsilon),
        "epsilon_float": float(epsilon),
        "delta": privacy.delta or 0.0,
        "mechanism": privacy.mechanism,
        "groups": plan.key_count,
        "measurements": len(ms),
        "min_noisy_persons": privacy.min_noisy_persons,
        "threshold_error95": round(errors["m_persons"], 2) if "m_persons" in errors else None,
        "aggregates": per_aggregate,
    }
