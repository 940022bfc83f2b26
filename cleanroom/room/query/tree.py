"""Small builders of the compiler's statement trees, shared by its modules.

Every name goes through :mod:`cleanroom.sql` (checked and quoted) and every
number is a literal node, so what the compiler builds from these stays a tree
with no SQL text in it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from cleanroom import sql


def column(name: str, table: str | None = None) -> exp.Column:
    """A column the compiler names (its CTEs' and the plan's), checked and quoted."""
    return sql.column(name, table)


def alias(node: exp.Expr, name: str) -> exp.Expr:
    """``node AS "name"``."""
    return exp.alias_(node, sql.identifier(name), copy=False)


def number(n: int) -> exp.Expr:
    """An integer literal: a bound, a group's number, a place."""
    return exp.Literal.number(int(n))


def count_star() -> exp.Count:
    """``count(*)``, a BIGINT."""
    return exp.Count(this=exp.Star(), big_int=True)


def salted(columns: Sequence[str], salt: int) -> list[exp.Expr]:
    """A salted hash of ``columns`` and the person, then the columns (a tie never keeps more)."""
    hashed = exp.Anonymous(
        this="hash", expressions=[*(column(c) for c in columns), column("person"), sql.bigint(salt)]
    )
    return [hashed, *(column(c) for c in columns)]


def total(node: exp.Expr, name: str) -> exp.Expr:
    """``coalesce(node, 0)::BIGINT AS name``: an empty result counts zero."""
    value = exp.Coalesce(this=node, expressions=[exp.Literal.number(0)])
    return alias(exp.cast(value, exp.DataType.build("BIGINT"), copy=False), name)


def answer_and_cut() -> exp.Select:
    """``SELECT answer.*, cut_totals.*``: one row of totals even when no group has a row."""
    both = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("answer")))
    both = both.select(exp.Column(this=exp.Star(), table=exp.to_identifier("cut_totals")))
    on = exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1))
    return both.from_("cut_totals").join(exp.Join(this=exp.to_table("answer"), side="LEFT", on=on))


class Query:
    """The CTEs in order, then the final SELECT."""

    def __init__(self) -> None:
        self.ctes: list[tuple[str, exp.Query]] = []

    def add(self, name: str, query: exp.Query) -> None:
        self.ctes.append((name, query))

    def build(self, final: exp.Select) -> exp.Select:
        for name, query in self.ctes:
            final = final.with_(name, as_=query, copy=False)
        return final
