"""The WHERE clause of restricted SQL, and how it narrows the released keys.

Filters are literal comparisons of vetted columns, joined by AND, OR and NOT;
literals must have the column's type, and a dimension's must be declared
(``domain_value_undeclared``), so groups come from declared domains and the
set of released keys depends on the policy and the query, never on the data.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from sqlglot import exp

from cleanroom.contract.spec import ColumnType
from cleanroom.errors import T_
from cleanroom.room.query.parse import (
    PERSON,
    QueryRejected,
    fragment,
    function_refused,
    literal,
    not_a_value,
    render_scalar,
    time_value,
    unparen,
)
from cleanroom.room.query.plan import BoolOp, Comparison, Filter, Scalar
from cleanroom.room.query.scope import Column, Scope
from cleanroom.text import EmptiedValue, normalize_category, quoted

CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]
_COMPARE: dict[type[exp.Expr], CompareOp] = {
    exp.EQ: "=",
    exp.NEQ: "!=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
}
_MIRROR: dict[CompareOp, CompareOp] = {
    "=": "=",
    "!=": "!=",
    "<": ">",
    "<=": ">=",
    ">": "<",
    ">=": "<=",
}


class Filters:
    """WHERE as a tree of ``column op literal`` comparisons over vetted columns."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def of(self, select: exp.Select) -> Filter | None:
        where = select.args.get("where")
        return None if where is None else self.convert(where.this)

    def convert(self, node: exp.Expr) -> Filter:
        node = unparen(node)
        if isinstance(node, exp.And | exp.Or):
            kind: Literal["and", "or"] = "and" if isinstance(node, exp.And) else "or"
            return BoolOp(kind, tuple(self.convert(item) for item in _flatten(node)))
        if isinstance(node, exp.Not):
            return _negate(self.convert(node.this))
        if type(node) in _COMPARE:
            return self.compare(node, _COMPARE[type(node)])
        if isinstance(node, exp.In | exp.Between | exp.Is):
            return self.special(node)
        if literal(node) is not None or isinstance(node, exp.Null):
            raise QueryRejected(
                "constant_predicate",
                T_(
                    "WHERE %(clause)s does not depend on any column; remove it",
                    clause=fragment(node),
                ),
            )
        if isinstance(node, exp.Column):
            raise QueryRejected(
                "unsupported_predicate",
                T_(
                    "WHERE %(clause)s: compare the column with a value, e.g. = TRUE",
                    clause=fragment(node),
                ),
            )
        if isinstance(node, exp.Func):
            raise function_refused(node)
        raise QueryRejected(
            "unsupported_predicate",
            T_(
                "WHERE %(clause)s: filters are comparisons (= != < <= > >=, IN, BETWEEN, "
                "IS NULL) of a column with literal values, joined by AND, OR and NOT",
                clause=fragment(node),
            ),
        )

    def compare(self, node: exp.Expr, op: CompareOp) -> Comparison:
        left, right = unparen(node.this), unparen(node.args["expression"])
        if not isinstance(left, exp.Column) and isinstance(right, exp.Column):
            left, right, op = right, left, _MIRROR[op]
        column = self.column(left, node)
        return Comparison(column.ref, op, (self.value(column, right, node),))

    def special(self, node: exp.In | exp.Between | exp.Is) -> Comparison:
        """IN, BETWEEN and IS NULL, the comparisons with their own syntax."""
        if isinstance(node, exp.In):
            return self.member(node)
        if isinstance(node, exp.Between):
            return self.between(node)
        return self.null_test(node)

    def member(self, node: exp.In) -> Comparison:
        if node.args.get("query") is not None:
            raise QueryRejected(
                "subquery",
                T_("%(clause)s: IN takes a list of literal values", clause=fragment(node)),
            )
        if node.args.get("field") is not None or node.args.get("unnest") is not None:
            raise QueryRejected(
                "unsupported_predicate",
                T_("%(clause)s: IN takes a (list, of, values)", clause=fragment(node)),
            )
        column = self.column(unparen(node.this), node)
        values = node.expressions
        if not values:
            raise QueryRejected(
                "unsupported_predicate",
                T_("%(clause)s: the IN list is empty", clause=fragment(node)),
            )
        admitted = [self.value(column, value, node) for value in values]
        unique = tuple(dict.fromkeys(admitted))
        return Comparison(column.ref, "in", unique)

    def between(self, node: exp.Between) -> Comparison:
        if node.args.get("symmetric"):
            raise QueryRejected(
                "unsupported_predicate",
                T_("%(clause)s: BETWEEN SYMMETRIC is not allowed", clause=fragment(node)),
            )
        column = self.column(unparen(node.this), node)
        low = self.value(column, node.args["low"], node)
        high = self.value(column, node.args["high"], node)
        return Comparison(column.ref, "between", (low, high))

    def null_test(self, node: exp.Is) -> Comparison:
        column = self.column(unparen(node.this), node)
        if not isinstance(node.expression, exp.Null):
            raise QueryRejected(
                "unsupported_predicate",
                T_(
                    "%(clause)s: IS is for NULL only; write %(column)s = TRUE instead",
                    clause=fragment(node),
                    column=column.name,
                ),
            )
        return Comparison(column.ref, "is null")

    def column(self, node: exp.Expr, predicate: exp.Expr) -> Column:
        """The filtered column: the one side of a comparison that is a column."""
        if not isinstance(node, exp.Column):
            if literal(node) is not None or isinstance(node, exp.Null):
                if predicate.find(exp.Column) is not None:
                    raise QueryRejected(
                        "unsupported_predicate",
                        T_("%(clause)s: put the column first", clause=fragment(predicate)),
                    )
                raise QueryRejected(
                    "constant_predicate",
                    T_(
                        "WHERE %(clause)s does not depend on any column; remove it",
                        clause=fragment(predicate),
                    ),
                )
            raise not_a_value(node, predicate)
        column = self.scope.resolve(node)
        if column.role == PERSON:
            raise QueryRejected(
                "person_filter",
                T_(
                    "WHERE %(clause)s: person cannot be filtered on; a filter on person "
                    "would single out individuals",
                    clause=fragment(predicate),
                ),
            )
        return column

    def value(self, column: Column, node: exp.Expr, predicate: exp.Expr) -> Scalar:
        """A literal compared with ``column``: of the column's type, and declared if a dimension."""
        node = unparen(node)
        found = literal(node)
        if found is None:
            raise not_a_value(node, predicate)
        value, typed = found
        policy = column.policy
        assert policy is not None
        shown = fragment(predicate)
        if column.role == "time":
            if not isinstance(value, str):
                raise QueryRejected(
                    "literal_type",
                    T_(
                        "%(shown)s: %(column)s is %(a)s; compare it with a date like "
                        "'2025-01-31' or DATE '2025-01-31'",
                        shown=shown,
                        column=column.name,
                        a=_a(policy.type),
                    ),
                )
            return time_value(value, policy.type, typed, shown)
        if typed is not None:
            raise QueryRejected(
                "literal_type",
                T_(
                    "%(shown)s: %(column)s is %(a)s, not a date",
                    shown=shown,
                    column=column.name,
                    a=_a(policy.type),
                ),
            )
        if column.role == "metric":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise QueryRejected(
                    "literal_type",
                    T_(
                        "%(shown)s: %(column)s is a number; compare it with one",
                        shown=shown,
                        column=column.name,
                    ),
                )
            return value
        expected = {
            ColumnType.category: "a 'quoted' string",
            ColumnType.integer: "a whole number",
            ColumnType.boolean: "TRUE or FALSE",
        }[policy.type]
        if _kind(value) != _kind_of_type(policy.type):
            raise QueryRejected(
                "literal_type",
                T_(
                    "%(shown)s: %(column)s is %(a)s; use %(expected)s",
                    shown=shown,
                    column=column.name,
                    a=_a(policy.type),
                    expected=expected,
                ),
            )
        assert policy.domain is not None
        if isinstance(value, str):
            # The rule parties stored the data with, so 'شيراز' finds 'شیراز'.
            try:
                value = normalize_category(value)
            except EmptiedValue as err:
                raise QueryRejected(
                    "bad_literal", T_("%(shown)s: %(err)s", shown=shown, err=err)
                ) from None
        if _domain_key(value, policy.type) not in {
            _domain_key(d, policy.type) for d in policy.domain
        }:
            raise QueryRejected(
                "domain_value_undeclared",
                T_(
                    "%(shown)s: %(value)s is not a declared value of %(column)s (%(listing)s)",
                    shown=shown,
                    value=_shown(value),
                    column=column.name,
                    listing=_listing(policy.domain),
                ),
            )
        return value


def _negate(inner: Filter) -> Filter:
    """NOT over a filter; NOT IN and IS NOT NULL are comparisons of their own."""
    if isinstance(inner, Comparison) and inner.op == "in":
        return replace(inner, op="not in")
    if isinstance(inner, Comparison) and inner.op == "is null":
        return replace(inner, op="is not null")
    if isinstance(inner, BoolOp) and inner.op == "not":
        return inner.items[0]
    return BoolOp("not", (inner,))


def _flatten(node: exp.Expr) -> list[exp.Expr]:
    """Operands of a chain of the same connector, through parentheses."""
    kind = type(node)
    out: list[exp.Expr] = []
    stack = [node]
    while stack:
        item = unparen(stack.pop())
        if type(item) is kind:
            stack.extend([item.args["expression"], item.this])
        else:
            out.append(item)
    return out


# --- domains -------------------------------------------------------------------------------


def narrow_domain(key: Column, where: Filter | None) -> tuple[Scalar, ...]:
    """The released keys: the declared domain, narrowed by top-level WHERE conjuncts.

    Narrowing depends only on the query and the policy, never on the data, so
    the released key set stays data-independent; values the WHERE clause rules
    out would only release noise around zero.
    """
    policy = key.policy
    assert policy is not None and policy.domain is not None
    domain = list(policy.domain)
    conjuncts = list(where.items) if isinstance(where, BoolOp) and where.op == "and" else [where]
    for item in conjuncts:
        if not isinstance(item, Comparison) or item.column != key.ref:
            continue
        keys = {_domain_key(v, policy.type) for v in item.values}
        if item.op in ("=", "in"):
            domain = [d for d in domain if _domain_key(d, policy.type) in keys]
        elif item.op in ("!=", "not in"):
            domain = [d for d in domain if _domain_key(d, policy.type) not in keys]
    return tuple(domain)


def _kind(value: Scalar) -> str:
    return type(value).__name__


def _kind_of_type(column_type: ColumnType) -> str:
    return {ColumnType.category: "str", ColumnType.integer: "int", ColumnType.boolean: "bool"}[
        column_type
    ]


def _domain_key(value: Scalar, column_type: ColumnType) -> tuple[str, Scalar]:
    """Equality of a literal and a declared value (categories compare as text)."""
    if column_type == ColumnType.category:
        return "str", str(value)
    return _kind(value), value


def _shown(value: Scalar) -> str:
    """A value in a refusal: strings whole and bidi-isolated, others as SQL."""
    return quoted(value) if isinstance(value, str) else render_scalar(value)


def _listing(values: list[Scalar], limit: int = 12) -> str:
    shown = ", ".join(_shown(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"
