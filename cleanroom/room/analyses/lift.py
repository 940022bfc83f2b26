"""``lift``: a campaign's effect at another brand, treatment against control, with its interval.

One party's campaign table assigns persons to arms (``arm_column``: its
``treatment`` and ``control`` values) on an exposure date (the table's time
column). A person's arm is that of their first exposure in the period, so
each person is in one arm. Their outcome is measured at the ``outcome``
brand (or dataset, or dataset:column=value) from the exposure day for
``window_days``: converted (any event) and, with ``metric``, their spend —
each value clamped to the metric's bounds on both sides (a missing value
adds nothing), and the person's total to ``[-spend_cap, spend_cap]`` (to
``[0, spend_cap]`` when the metric cannot be negative). Per arm the engine
releases persons, converted persons and total spend: one person is in one
arm, so moves one cell of each by 1, 1 and ``spend_cap`` (L1 and L2
alike). Rates and the difference are post-processing; the difference's 95%
interval combines the noise and the sampling error of a difference of two
proportions. Parameters: ``campaign`` (party.dataset),
``arm_column`` (default arm), ``treatment``/``control`` (default treatment /
control), ``outcome``, ``metric``, ``spend_cap``, ``window_days`` (1–365,
default 28), ``start``/``end`` (exposure dates).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cleanroom import accuracy
from cleanroom.errors import T_
from cleanroom.room import dp, sensitivity
from cleanroom.room.analyses.activity import Source, events_sql, require_own, step_source
from cleanroom.room.analyses.journey import CUT, Cell, Journey, Vector, count
from cleanroom.room.analyses.params import Params, period
from cleanroom.room.pipeline import Cut
from cleanroom.room.policy import CollaborationPolicy
from cleanroom.room.policy.privacy import PrivacyPolicy
from cleanroom.room.query.check import QueryRejected
from cleanroom.room.query.release import ratio
from cleanroom.sql import quote_column, statement, table_sql
from cleanroom.text import quoted

Z95 = 1.959963984540054


def evidence(low: float, high: float) -> str:
    """What the difference's 95% interval says: ``none`` when it includes 0, else its side.

    An interval that includes 0 is no evidence of an effect either way; the
    answer says so in words (``evidence``) and on the cell (``includes_zero``).
    """
    if low <= 0 <= high:
        return "none"
    return "treatment_higher" if low > 0 else "treatment_lower"


def rate_variance(rate: float, n: int, rate_error: float) -> float:
    """Sampling variance of a proportion plus the (conservative) variance of its noise."""
    if n <= 0:
        return math.inf
    return rate * (1 - rate) / n + (rate_error / Z95) ** 2


@dataclass(frozen=True)
class CampaignLift(Journey):
    """Treatment vs control at an outcome brand."""

    campaign: Source
    arm_column: str
    arms: tuple[str, str]  # treatment, control
    outcome_label: str
    outcome: tuple[Source, ...]
    metric: tuple[str, float, float] | None  # column, lower, upper
    spend_cap: int
    window_days: int
    start: dt.date
    end: dt.date
    name = "lift"

    @property
    def canonical(self) -> str:  # type: ignore[override]
        """The cache key's text."""
        metric = self.metric[0] if self.metric else "-"
        return (
            f"template lift campaign={self.campaign.table} arm={self.arm_column}"
            f" arms={','.join(self.arms)} outcome={self.outcome_label} metric={metric}"
            f" cap={self.spend_cap} window={self.window_days} period={self.start}..{self.end}"
        )

    @property
    def spend_bounds(self) -> tuple[int, int]:
        """What one person's spend is clamped to: ``±spend_cap`` on the metric's sides of zero.

        A metric that can be negative (refunds) gives a negative total as
        large as a positive one, so the total is clamped from below too.
        """
        if self.metric is None:
            return (0, 0)
        _, lo, hi = self.metric
        return (-self.spend_cap if lo < 0 else 0, self.spend_cap if hi > 0 else 0)

    def vectors(self) -> list[Vector]:
        """See :class:`Journey`: each person is in one arm, so in one cell of each vector."""
        cells = tuple((a,) for a in self.arms)
        one = sensitivity.once_per_cell(1)
        vectors = [Vector("persons", cells, one), Vector("converted", cells, one)]
        if self.metric is not None:
            spend = sensitivity.bounded_total(*self.spend_bounds)
            vectors.append(Vector("spend", cells, spend))
        return vectors

    def exact(self, cursor: Any, tables: dict[str, str]) -> dict[str, dict[Cell, int]]:
        """See :class:`Journey`."""
        if self.campaign.table not in tables:
            raise QueryRejected(
                "no_data", T_("'%(table)s' has no data in the room yet", table=self.campaign.table)
            )
        c = self.campaign
        horizon = self.end + dt.timedelta(days=self.window_days + 1)
        outcome, values = events_sql(
            list(self.outcome),
            tables,
            self.start,
            horizon,
            value=self.metric[0] if self.metric else None,
        )
        value = "CAST(NULL AS DOUBLE)"  # without a metric: no spend, never a bound
        if self.metric is not None:
            _, lo, hi = self.metric
            value = sensitivity.clamp_sql("v", lo, hi, table="e")
        person_spend = sensitivity.clamp_sql("spend", *self.spend_bounds)
        cut = self.cut()
        arm, time = quote_column(self.arm_column), quote_column(c.time)
        sql = f"""
            WITH arms AS (
                SELECT person, arg_min(arm, exposed) AS arm, min(exposed) AS exposed FROM (
                    SELECT person, {arm} AS arm, CAST({time} AS TIMESTAMP) AS exposed
                    FROM {table_sql(tables[c.table])}
                    WHERE {arm} IN ($treatment, $control) AND {time} >= $start AND {time} < $end
                ) GROUP BY person
            ),
            outcomes AS (
                SELECT a.person, a.arm, count(e.person) > 0 AS converted,
                       coalesce(sum({value}), 0) AS spend
                FROM arms a LEFT JOIN ({outcome}) e
                  ON e.person = a.person AND e.t >= CAST(a.exposed AS DATE)
                 AND e.t < CAST(a.exposed AS DATE) + to_days(CAST($window AS INTEGER))
                GROUP BY a.person, a.arm
            )
            SELECT arm, count(*), count(*) FILTER (WHERE converted),
                   CAST(sum(round({person_spend})) AS BIGINT),
                   CAST(sum(abs(round({person_spend}))) AS BIGINT),
                   CAST(sum(round(least(abs(spend - {person_spend}), $cap))) AS BIGINT),
                   count(*) FILTER (WHERE spend <> {person_spend})
            FROM outcomes GROUP BY arm
        """  # noqa: S608
        treatment, control = self.arms
        query = statement(
            sql,
            **values,
            treatment=treatment,
            control=control,
            start=self.start,
            end=self.end,
            window=self.window_days,
            cap=cut.cap if cut is not None else 0,
        )
        rows = cursor.execute(query).fetchall()
        return {
            "persons": {(r[0],): int(r[1]) for r in rows},
            "converted": {(r[0],): int(r[2]) for r in rows},
            "spend": {(r[0],): int(r[3] or 0) for r in rows},
            CUT: {
                (name,): sum(int(r[i] or 0) for r in rows)
                for i, name in ((4, "kept"), (5, "cut"), (6, "persons"))
            },
        }

    def cut(self) -> Cut | None:
        """Spend over ``spend_cap`` a person (their total is clamped): disclosed as an amount."""
        if self.metric is None or self.spend_cap < 1:
            return None
        return Cut.of("amount", self.spend_cap)

    def answer(
        self, noisy: dict[str, dp.Release], privacy: PrivacyPolicy
    ) -> tuple[list[str], list[dict[str, Any]], int, dict[str, Any]]:
        """See :class:`Journey`: both arms or neither (a contrast needs both)."""
        n, conv = noisy["persons"], noisy["converted"]
        spend = noisy.get("spend")
        if min(n.values) < privacy.min_noisy_persons:
            return self.columns, [], len(self.arms), {}
        rows = []
        for i, arm in enumerate(self.arms):
            row: dict[str, Any] = {
                "arm": arm,
                "persons": count(n.values[i], n.error95),
                "converted": count(conv.values[i], conv.error95),
                "rate": ratio(conv.values[i], conv.error95, n.values[i], n.error95, 0, 1),
            }
            if spend is not None:
                row["spend_per_person"] = ratio(
                    spend.values[i], spend.error95, n.values[i], n.error95, *self.spend_bounds
                )
            rows.append(row)
        return self.columns, rows, 0, {"lift": self._contrast(rows)}

    @property
    def columns(self) -> list[str]:
        """The answer's columns."""
        base = ["arm", "persons", "converted", "rate"]
        return [*base, "spend_per_person"] if self.metric is not None else base

    def _contrast(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        treated, control = rows
        rates = [r["rate"]["value"] for r in rows]
        if None in rates:
            return {"difference": None, "relative": None, "evidence": None}
        variance = sum(
            rate_variance(r["rate"]["value"], r["persons"]["value"], r["rate"]["error95"])
            for r in rows
        )
        diff = rates[0] - rates[1]
        half = Z95 * math.sqrt(variance)
        out: dict[str, Any] = {
            "difference": {
                "value": round(diff, 6),
                "low": round(diff - half, 6),
                "high": round(diff + half, 6),
                "error95": round(half, 6),
                "unit": accuracy.POINTS,
                "includes_zero": diff - half <= 0 <= diff + half,
            },
            "relative": None,
            "evidence": evidence(diff - half, diff + half),
        }
        if rates[1] > 0:
            out["relative"] = {
                "value": round(diff / rates[1], 4),
                "low": round((diff - half) / rates[1], 4),
                "high": round((diff + half) / rates[1], 4),
                "error95": round(half / rates[1], 4),
                "unit": accuracy.SHARE,
                "includes_zero": diff - half <= 0 <= diff + half,
                "note": "the difference's interval over the control rate (its noise not included)",
            }
        if "spend_per_person" in treated and treated["spend_per_person"]["value"] is not None:
            t, c = treated["spend_per_person"], control["spend_per_person"]
            if c["value"] is not None:
                half_s = math.hypot(t["error95"], c["error95"])
                d = t["value"] - c["value"]
                out["spend_difference"] = {
                    "value": round(d, 2),
                    "low": round(d - half_s, 2),
                    "high": round(d + half_s, 2),
                    "error95": round(half_s, 2),
                    "includes_zero": d - half_s <= 0 <= d + half_s,
                    "note": "noise only: spend's sampling spread is not released",
                }
        return out


def prepare_lift(
    params: Mapping[str, str], *, policy: CollaborationPolicy, party: str
) -> CampaignLift:
    """Check the parameters (see the module docstring)."""
    p = Params("lift", params)
    campaign = _campaign(p, policy, party)
    arm_column = p.text("arm_column", "arm") or "arm"
    contract = policy.contract(campaign.party, campaign.dataset)
    assert contract is not None
    column = contract.columns.get(arm_column)
    if column is None or column.domain is None:
        raise p.reject(
            "arm_column",
            T_(
                "%(arm_column)s must be a dimension of %(table)s",
                arm_column=quoted(arm_column),
                table=campaign.table,
            ),
        )
    arms = (p.text("treatment", "treatment") or "", p.text("control", "control") or "")
    for name, value in zip(("treatment", "control"), arms, strict=True):
        if value not in [str(v) for v in column.domain]:
            raise p.reject(
                name,
                T_(
                    "%(value)s is not a declared value of %(arm_column)s",
                    value=quoted(value),
                    arm_column=arm_column,
                ),
            )
    if arms[0] == arms[1]:
        raise p.reject("control", T_("must differ from treatment"))
    label = p.text("outcome")
    if label is None:
        raise p.reject("outcome", T_("is required (a brand, e.g. outcome=ofogh)"))
    outcome = tuple(step_source(p, "outcome", label, policy, party))
    require_own(p, "campaign/outcome", sorted({campaign.party, outcome[0].party}), policy, party)
    metric = None
    metric_name = p.text("metric")
    if metric_name is not None:
        if len(outcome) != 1:
            raise p.reject("metric", T_("needs the outcome to name one dataset (brand.dataset)"))
        out_contract = policy.contract(outcome[0].party, outcome[0].dataset)
        assert out_contract is not None
        col = out_contract.columns.get(metric_name)
        if col is None or col.bounds is None:
            raise p.reject(
                "metric",
                T_(
                    "%(metric_name)s is not a metric of %(table)s",
                    metric_name=quoted(metric_name),
                    table=outcome[0].table,
                ),
            )
        metric = (metric_name, col.bounds[0], col.bounds[1])
    default_cap = math.ceil(metric[2]) if metric else 1
    cap = p.integer("spend_cap", default_cap, 1, 10**12)
    window = p.integer("window_days", 28, 1, 365)
    start, end = period(p)
    p.done()
    return CampaignLift(campaign, arm_column, arms, label, outcome, metric, cap, window, start, end)


def _campaign(p: Params, policy: CollaborationPolicy, party: str) -> Source:
    """The named campaign table, or the collaboration's only one (a non-activity dataset)."""
    name = p.text("campaign")
    candidates = [
        Source(pid, ds, c.time)
        for pid, spec in sorted(policy.parties.items())
        for ds, c in sorted(spec.datasets.items())
        if not c.activity and c.time is not None
    ]
    if name is None:
        if len(candidates) != 1:
            raise p.reject("campaign", T_("is required (party.dataset of the campaign table)"))
        chosen = candidates[0]
    else:
        found = [c for c in candidates if c.table == name]
        if not found:
            raise p.reject(
                "campaign",
                T_("%(name)s is not a campaign table of this collaboration", name=quoted(name)),
            )
        chosen = found[0]
    spec = policy.parties.get(party)
    if spec is not None and not spec.analysts.may_read(chosen.table):
        raise QueryRejected(
            "table_not_allowed", T_("campaign: '%(table)s' is not open to you", table=chosen.table)
        )
    return chosen
