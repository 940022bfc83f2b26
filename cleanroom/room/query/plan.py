"""The checked form of a query: what the engine will compute, and nothing else.

The SQL checker turns an analyst's SELECT into a :class:`QueryPlan`; only the
plan is ever compiled to SQL, never the analyst's text. Every field is data the
policy vetted: tables by name, columns by name with their role, filters as a
small expression tree over vetted columns and literal values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Scalar = str | int | float | bool
AggKind = Literal["count", "count_persons", "sum", "avg"]


@dataclass(frozen=True)
class TableRef:
    """One analysis table in the FROM clause; ``alias`` is how the query names it."""

    party: str
    dataset: str
    alias: str

    @property
    def name(self) -> str:
        """``party.dataset``."""
        return f"{self.party}.{self.dataset}"


@dataclass(frozen=True)
class ColumnRef:
    """A vetted column of one of the plan's tables."""

    table: str  # alias of a TableRef in the plan
    column: str


@dataclass(frozen=True)
class Comparison:
    """``column op literal(s)``: the only leaf a filter may have."""

    column: ColumnRef
    op: Literal[
        "=", "!=", "<", "<=", ">", ">=", "in", "not in", "between", "is null", "is not null"
    ]
    values: tuple[Scalar, ...] = ()


@dataclass(frozen=True)
class BoolOp:
    """AND / OR / NOT over filters."""

    op: Literal["and", "or", "not"]
    items: tuple[Filter, ...]


Filter = Comparison | BoolOp


@dataclass(frozen=True)
class GroupKey:
    """A dimension grouped by; its domain is the released key set."""

    column: ColumnRef
    domain: tuple[Scalar, ...]
    output: str


@dataclass(frozen=True)
class Aggregate:
    """One released number per group.

    ``count`` is COUNT(*), ``count_persons`` COUNT(DISTINCT person); ``sum``
    and ``avg`` are over a metric, each value clamped to ``bounds``.
    """

    kind: AggKind
    output: str
    column: ColumnRef | None = None
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class QueryPlan:
    """A checked query: tables joined on person, an optional filter, groups, aggregates."""

    tables: tuple[TableRef, ...]
    aggregates: tuple[Aggregate, ...]
    group_by: tuple[GroupKey, ...] = ()
    where: Filter | None = None
    canonical: str = field(default="", compare=False)  # normalized SQL text, for cache keys

    @property
    def key_count(self) -> int:
        """How many groups the release has (the product of the domains)."""
        n = 1
        for key in self.group_by:
            n *= len(key.domain)
        return n
