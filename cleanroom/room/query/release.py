"""From exact bounded aggregates to the released table: the SQL side of the one pipeline.

The noise itself is :mod:`cleanroom.room.pipeline`'s, as for every template;
what is here is post-processing: every declared key gets a value (a key with
no rows is a noisy zero, so the absence of a group is not a signal), groups
whose noisy person count is under the policy's minimum are withheld, AVG is
a noisy sum over a noisy count, and each number carries the 95% half-width of
its noise. Each aggregate reads the measurements the compiler tied to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cleanroom import accuracy
from cleanroom.room import dp, pipeline
from cleanroom.room.epsilon import Epsilon
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.compile import Compiled, Measurement, Measures, integer_bounds
from cleanroom.room.query.plan import Aggregate, QueryPlan


@dataclass(frozen=True)
class Released:
    """The public result of one query."""

    columns: list[str]
    rows: list[dict[str, Any]]
    suppressed: int
    epsilon: Epsilon
    delta: float
    extra: dict[str, Any] = field(default_factory=dict)  # derived figures (post-processing)
    cut: dict[str, Any] = field(default_factory=dict)  # what the bounds removed (pipeline)

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
            "cut": self.cut,
        }


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
    exact: Sequence[tuple[Any, ...]],
    *,
    epsilon: Fraction,
    privacy: PrivacyPolicy,
) -> Released:
    """Noise every measurement over the full key grid, then build the answer rows."""
    grid = list(itertools.product(*(key.domain for key in plan.group_by)))
    position = {key: i for i, key in enumerate(grid)}
    n_keys = len(compiled.keys)
    ms = compiled.measurements
    vectors: dict[Measurement, list[int]] = {m: [0] * len(grid) for m in ms}
    counts = None
    for record in exact:
        if compiled.measures.cut is not None:  # the cut's totals close every row
            counts = pipeline.CutCounts(*(int(v or 0) for v in record[-3:]))
        i = position.get(tuple(record[:n_keys]))
        if i is None:  # no group (only the cut's totals), or, impossibly, an undeclared key
            continue
        for j, m in enumerate(ms):
            vectors[m][i] = int(record[n_keys + j] or 0)
    noisy = pipeline.release(
        vectors, compiled.measures.cut, counts, epsilon=epsilon, privacy=privacy
    )
    return _answer(plan, grid, compiled.measures, noisy, privacy)


def _answer(
    plan: QueryPlan,
    grid: list[tuple[Any, ...]],
    measures: Measures,
    noisy: pipeline.Noisy,
    privacy: PrivacyPolicy,
) -> Released:
    persons = noisy[measures.persons] if measures.persons is not None else None
    columns = [key.output for key in plan.group_by] + [a.output for a in plan.aggregates]
    rows: list[dict[str, Any]] = []
    suppressed = 0
    for i, key in enumerate(grid):
        if persons is not None and persons.values[i] < privacy.min_noisy_persons:
            suppressed += 1
            continue
        row: dict[str, Any] = {k.output: v for k, v in zip(plan.group_by, key, strict=True)}
        for agg, used in zip(plan.aggregates, measures.per_aggregate, strict=True):
            row[agg.output] = _value(agg, i, [noisy[m] for m in used])
        rows.append(row)
    return Released(columns, rows, suppressed, noisy.epsilon, noisy.delta, cut=noisy.cut)


def _value(agg: Aggregate, i: int, used: list[dp.Release]) -> dict[str, Any]:
    if agg.kind in ("count", "count_persons"):
        (r,) = used
        return {"value": max(0, r.values[i]), "error95": round(r.error95, 2)}
    if agg.kind == "sum":
        (s,) = used
        return {"value": s.values[i], "error95": round(s.error95, 2)}
    assert agg.bounds is not None
    s, n = used
    lo, hi = integer_bounds(agg.bounds)
    return ratio(s.values[i], s.error95, n.values[i], n.error95, lo, hi, unit=accuracy.MEAN)


def preview(
    plan: QueryPlan, measures: Measures, *, epsilon: Fraction, privacy: PrivacyPolicy
) -> dict[str, Any]:
    """A dry run: what the query would cost and how accurate each number would be."""
    errors, cut = pipeline.preview(measures.all, measures.cut, epsilon=epsilon, privacy=privacy)
    per_aggregate: dict[str, Any] = {}
    for agg, used in zip(plan.aggregates, measures.per_aggregate, strict=True):
        if agg.kind == "avg":
            total, values = used
            per_aggregate[agg.output] = {
                "sum_error95": round(errors[total], 2),
                "count_error95": round(errors[values], 2),
            }
        else:
            per_aggregate[agg.output] = {"error95": round(errors[used[0]], 2)}
    threshold = measures.persons
    return {
        "epsilon": str(epsilon),
        "epsilon_float": float(epsilon),
        "delta": privacy.delta or 0.0,
        "mechanism": privacy.mechanism,
        "groups": plan.key_count,
        "measurements": len(measures.all),
        "min_noisy_persons": privacy.min_noisy_persons,
        "threshold_error95": round(errors[threshold], 2) if threshold is not None else None,
        "aggregates": per_aggregate,
        "cut": cut,
    }
