"""Per-person bounds that fit the data: chosen at match time with a DP quantile (via dp.py).

Fixed per-person bounds cut every person above them, and the cut is bias, not
noise: with ten rows per person a whale's thousands of events count as ten and
a ``COUNT(*)`` comes out a third low. Bounds far above the data would instead
add noise for nothing. When the policy has ``privacy.adaptive_bounds``, a
match measures how many rows (and groups) each person has and picks, with
OpenDP's private quantile (the exponential mechanism over a score of how far
each candidate is from the aimed quantile), the bound that covers the policy's
``quantile`` of persons.

Why this is private, and stays so:

- Each person adds one value per measure (their largest row count over the
  live datasets, their largest number of groups), so adding or removing a
  person moves each measure's input by one (symmetric distance 1) and each
  quantile costs exactly the epsilon OpenDP maps it to.
- The candidates are a grid fixed before any data is read (:func:`candidates`:
  1, 2, 3, 5, 8, … up to the policy's hard maximum), so no candidate leaks a
  data value.
- The whole epsilon is charged to the share the policy names *before* any
  count is read (:func:`choose_for_match` takes the charge as a callback it
  runs first), and refunded only if the match fails before anything is
  recorded.
- The chosen numbers are stored in the generation and the audit chain; every
  query on that generation compiles and noises with them, so the sensitivity
  still follows from explicit bounds (:mod:`cleanroom.room.sensitivity`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from cleanroom.room.dp import private_quantile
from cleanroom.room.policy.models import CollaborationPolicy
from cleanroom.room.policy.privacy import AdaptiveBounds, PrivacyPolicy
from cleanroom.sql import quote_column, statement, table_sql

# The measures a match chooses: rows per person, groups per person, and transition pairs
# per person (for ``transitions``); the epsilon is split evenly over all three.
MEASURES = ("rows", "groups", "pairs")


def candidates(hard_max: int) -> tuple[int, ...]:
    """The grid a bound is chosen from: 1, 2, 3, 5, 8, 13, … (Fibonacci), then ``hard_max``.

    Fixed by the policy alone, never by the data. Fibonacci steps grow by
    about 1.6x, so the chosen bound is never much more than 1.6x the one the
    quantile aims at, and a grid up to 10,000 has only ~20 candidates.
    """
    if hard_max < 1:
        raise ValueError(f"a hard maximum must be at least 1, not {hard_max}")
    grid = [1, 2]
    while grid[-1] + grid[-2] < hard_max:
        grid.append(grid[-1] + grid[-2])
    return tuple(sorted({c for c in grid if c < hard_max} | {hard_max}))


@dataclass(frozen=True)
class ChosenBounds:
    """The bounds one match chose (or the policy's fixed ones), as recorded and applied."""

    rows: int
    groups: int
    adaptive: bool
    quantile: float | None = None
    epsilon: str | None = None  # exact, as a fraction's text
    charged_to: str | None = None
    pairs: int | None = None  # transition pairs per person; None: the template's default

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data for the store, the audit chain and results."""
        return {
            "rows": self.rows,
            "groups": self.groups,
            "adaptive": self.adaptive,
            "quantile": self.quantile,
            "epsilon": self.epsilon,
            "charged_to": self.charged_to,
            "pairs": self.pairs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChosenBounds:
        """Read back what :meth:`as_dict` wrote."""
        return cls(
            rows=int(data["rows"]),
            groups=int(data["groups"]),
            adaptive=bool(data["adaptive"]),
            quantile=data.get("quantile"),
            epsilon=data.get("epsilon"),
            charged_to=data.get("charged_to"),
            pairs=int(data["pairs"]) if data.get("pairs") is not None else None,
        )


def fixed(privacy: PrivacyPolicy) -> ChosenBounds:
    """The policy's own bounds (no adaptive section, or a generation that chose none)."""
    return ChosenBounds(
        rows=privacy.max_rows_per_person, groups=privacy.max_groups_per_person, adaptive=False
    )


def applied(privacy: PrivacyPolicy, recorded: dict[str, Any] | None) -> ChosenBounds:
    """The bounds a query on a generation uses under the policy active now.

    The generation's chosen bounds apply while the policy still asks for
    adaptive bounds, never above its current hard maxima; a policy that has
    dropped the option since the match gets its fixed bounds back.
    """
    adaptive = privacy.adaptive_bounds
    if adaptive is None or not recorded or not recorded.get("adaptive"):
        return fixed(privacy)
    chosen = ChosenBounds.from_dict(recorded)
    rows = min(chosen.rows, adaptive.max_rows_per_person)
    groups = min(chosen.groups, adaptive.max_groups_per_person, rows)
    pairs = None if chosen.pairs is None else min(chosen.pairs, adaptive.max_transitions)
    return ChosenBounds(
        rows=rows,
        groups=groups,
        adaptive=True,
        quantile=chosen.quantile,
        epsilon=chosen.epsilon,
        charged_to=chosen.charged_to,
        pairs=pairs,
    )


def with_bounds(privacy: PrivacyPolicy, bounds: ChosenBounds) -> PrivacyPolicy:
    """The privacy policy a query is compiled and noised under, with these bounds in it."""
    return privacy.model_copy(
        update={"max_rows_per_person": bounds.rows, "max_groups_per_person": bounds.groups}
    )


def per_person_sql(policy: CollaborationPolicy, tables: dict[str, str]) -> str:
    """Each person's largest row count and largest group count over the analysis tables.

    A person's groups in a table are their distinct combinations of all its
    dimensions: a query grouping by fewer dimensions puts them in no more
    groups than that.
    """
    parts = []
    for name, table in sorted(tables.items()):
        party, dataset = name.split(".", 1)
        contract = policy.contract(party, dataset)
        dims = (
            [c for c, col in contract.columns.items() if col.role == "dimension"]
            if contract
            else []
        )
        if dims:
            texts = (f"coalesce(CAST({quote_column(d)} AS VARCHAR), '')" for d in dims)
            key = " || '|' || ".join(texts)
            groups = f"count(DISTINCT {key})"
        else:
            groups = "1"
        parts.append(
            f"SELECT person, count(*) AS r, {groups} AS g FROM {table_sql(table)} "  # noqa: S608
            "WHERE person IS NOT NULL GROUP BY person"
        )
    union = " UNION ALL ".join(parts)
    return f"SELECT max(r), max(g) FROM ({union}) AS per GROUP BY person"  # noqa: S608


def pairs_sql(policy: CollaborationPolicy, tables: dict[str, str]) -> str | None:
    """Each person's number of distinct brand-to-brand pairs (A then B, A ≠ B), if any.

    Over every activity dataset with a time, with no window and no period: a
    ``transitions`` query sees at most these pairs. Persons with no pair are
    left out (one value per person who has one; the bound is about them).
    None when fewer than two brands have timed activity.
    """
    parts = []
    for name, table in sorted(tables.items()):
        party, dataset = name.split(".", 1)
        contract = policy.contract(party, dataset)
        if contract is None or contract.time is None or not contract.activity:
            continue
        brand = sorted(policy.parties).index(party)
        t = quote_column(contract.time)
        parts.append(
            f"SELECT person, {brand} AS brand, {t} AS t "  # noqa: S608
            f"FROM {table_sql(table)} WHERE person IS NOT NULL AND {t} IS NOT NULL"
        )
    if len({name.split(".", 1)[0] for name in tables if _timed(policy, name)}) < 2:
        return None
    events = " UNION ALL ".join(parts)
    return (
        f"WITH ev AS ({events}), seq AS (SELECT person, brand, lag(brand) OVER "  # noqa: S608
        "(PARTITION BY person ORDER BY t, brand) AS prev FROM ev) "
        "SELECT count(DISTINCT prev * 1000 + brand) FROM seq "
        "WHERE prev IS NOT NULL AND prev <> brand GROUP BY person"
    )


def _timed(policy: CollaborationPolicy, name: str) -> bool:
    contract = policy.contract(*name.split(".", 1))
    return contract is not None and contract.time is not None and contract.activity


def choose(
    rows: Sequence[tuple[int, int]],
    adaptive: AdaptiveBounds,
    epsilon: Fraction,
    pairs: Sequence[int] | None = None,
) -> ChosenBounds:
    """The bounds for one generation from its per-person (rows, groups) counts and pairs.

    ``epsilon`` is split evenly over the measures (a measure the policy's
    datasets cannot have — pairs with fewer than two timed brands — is not
    run, its share unspent); the group bound never exceeds the row bound (a
    person in more groups than rows cannot exist).
    """
    share = float(epsilon / len(MEASURES)) * (1 - 1e-9)  # never over the exact share
    k = private_quantile(
        [r for r, _ in rows], candidates(adaptive.max_rows_per_person), adaptive.quantile, share
    )
    g = private_quantile(
        [g for _, g in rows],
        candidates(adaptive.max_groups_per_person),
        adaptive.quantile,
        share,
    )
    m = (
        None
        if pairs is None
        else private_quantile(pairs, candidates(adaptive.max_transitions), adaptive.quantile, share)
    )
    return ChosenBounds(
        rows=k,
        groups=min(g, k),
        adaptive=True,
        quantile=adaptive.quantile,
        epsilon=str(epsilon),
        charged_to=adaptive.charged_to,
        pairs=m,
    )


def choose_for_match(
    cursor: Any,
    policy: CollaborationPolicy,
    tables: dict[str, str],
    charge: Callable[[Fraction], None],
) -> ChosenBounds | None:
    """Charge, then choose the generation's bounds (None when the policy fixes them).

    ``charge`` runs before any count is read and raises if the budget refuses:
    then no bound is chosen and the match fails, spending nothing.
    """
    privacy = policy.privacy
    if privacy is None or privacy.adaptive_bounds is None or not tables:
        return None
    adaptive = privacy.adaptive_bounds
    epsilon = Fraction(str(adaptive.epsilon))
    charge(epsilon)
    counts = cursor.execute(statement(per_person_sql(policy, tables))).fetchall()
    sql = pairs_sql(policy, tables)
    pairs = None if sql is None else [int(n) for (n,) in cursor.execute(statement(sql)).fetchall()]
    return choose([(int(r), int(g)) for r, g in counts], adaptive, epsilon, pairs)
