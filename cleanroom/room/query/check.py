"""The query gate: an analyst's restricted SQL, checked against the policy, as a plan.

Restricted SQL is one flat SELECT over analysis tables (``party.dataset``, a
``person`` column plus the contract's non-identifier columns) joined on
``person``, filtered by literal comparisons, grouped by dimensions and
releasing COUNT(*), COUNT(DISTINCT person), SUM(metric) and AVG(metric). The
checker accepts exactly that shape and builds a :class:`QueryPlan` from it; the
analyst's text is never run, only SQL compiled from the plan. Every refusal is a
:class:`QueryRejected` with a stable rule id and a message that names the
offending piece of the query. Why a shape is refused:

- only released aggregates leave the room, never a row (``row_level_output``)
  nor ``person`` (``person_in_output``), and every released number has a
  sensitivity the engine can bound: no arithmetic, functions or CASE;
- groups come from declared domains, so the set of released keys depends on the
  policy and the query, never on the data (``group_by_not_dimension``,
  ``domain_value_undeclared``);
- the join is on ``person`` only, so contribution bounding per person holds
  across tables (``join_not_on_person``, ``join_type``).

The syntactic rules (comments, statements, subqueries, ...) live in
:mod:`cleanroom.room.query.parse`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from sqlglot import exp

from cleanroom.room.policy.models import CollaborationPolicy, ColumnPolicy, DatasetContract
from cleanroom.room.policy.privacy import PartyAccess
from cleanroom.room.query.parse import (
    AGGREGATES,
    PERSON,
    QueryRejected,
    canonical_sql,
    fragment,
    function_refused,
    literal,
    not_a_value,
    number,
    parse_select,
    render_scalar,
    time_value,
    unalias,
    unparen,
)
from cleanroom.room.query.plan import (
    AggKind,
    Aggregate,
    BoolOp,
    ColumnRef,
    Comparison,
    Filter,
    GroupKey,
    QueryPlan,
    Scalar,
    TableRef,
)
from cleanroom.spec import ColumnType

__all__ = ["MAX_GROUPS", "PERSON", "QueryRejected", "canonical_sql", "check_sql"]

MAX_GROUPS = 100_000  # released keys per query: the product of the grouped domains
_ALIAS = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # table aliases end up in compiled SQL
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
_DEFAULT_NAMES: dict[AggKind, str] = {
    "count": "count",
    "count_persons": "persons",
    "sum": "sum_{}",
    "avg": "avg_{}",
}


def check_sql(sql: str, *, policy: CollaborationPolicy, party: str) -> QueryPlan:
    """The plan of ``sql`` asked by ``party``'s analysts, or :class:`QueryRejected`."""
    access = _access(policy, party)
    select = parse_select(sql)
    scope = _Scope.from_query(select, policy, party, access)
    where = _Filters(scope).of(select)
    keys = _group_by(select, scope)
    key_outputs, aggregates = _select_list(select, scope, keys)
    group_by = tuple(GroupKey(key.ref, _domain(key, where), key_outputs[key.ref]) for key in keys)
    plan = QueryPlan(tuple(t.ref for t in scope.tables), tuple(aggregates), group_by, where)
    for key in group_by:
        if not key.domain:
            raise QueryRejected(
                "empty_result",
                f"the WHERE clause excludes every declared value of {key.column.column}; "
                "the query would release nothing",
            )
    if plan.key_count > MAX_GROUPS:
        raise QueryRejected(
            "too_many_groups",
            f"GROUP BY {', '.join(k.column.column for k in group_by)} releases "
            f"{plan.key_count:,} groups; the limit is {MAX_GROUPS:,} "
            "(group by fewer dimensions, or restrict them in WHERE)",
        )
    return replace(plan, canonical=canonical_sql(plan, policy))


def _access(policy: CollaborationPolicy, party: str) -> PartyAccess:
    spec = policy.parties.get(party)
    if spec is None:
        raise QueryRejected("unknown_party", f"'{party}' is not a party of this collaboration")
    if not spec.analysts.free_sql:
        raise QueryRejected(
            "free_sql_disabled",
            f"the policy does not let {party}'s analysts write SQL; run an approved template",
        )
    return spec.analysts


# --- tables and columns ---------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    ref: TableRef
    contract: DatasetContract
    qualifiers: frozenset[str]  # how column references may name this table

    @property
    def called(self) -> str:
        """How the analyst's query names this table: its alias, else party.dataset."""
        return self.ref.alias if self.qualifiers == {self.ref.alias} else self.ref.name


@dataclass(frozen=True)
class _Column:
    table: _Table
    name: str
    policy: ColumnPolicy | None  # None for person, which the contract does not list

    @property
    def ref(self) -> ColumnRef:
        return ColumnRef(self.table.ref.alias, self.name)

    @property
    def role(self) -> str:
        return PERSON if self.policy is None else self.policy.role


class _Scope:
    """The FROM clause: which tables the query reads and how its columns resolve."""

    def __init__(
        self, policy: CollaborationPolicy, party: str, access: PartyAccess, tables: list[_Table]
    ) -> None:
        self.policy = policy
        self.party = party
        self.access = access
        self.tables = tables

    @classmethod
    def from_query(
        cls, select: exp.Select, policy: CollaborationPolicy, party: str, access: PartyAccess
    ) -> _Scope:
        source = select.args.get("from_")
        if source is None:
            raise QueryRejected("missing_from", "the query reads no table; add FROM party.dataset")
        joins: list[exp.Join] = select.args.get("joins") or []
        nodes = [source.this, *(join.this for join in joins)]
        found = [_table_name(node, policy, access) for node in nodes]
        names = [f"{p}.{d}" for p, d, _ in found]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise QueryRejected(
                    "duplicate_table",
                    f"{name} appears twice in FROM; each table may be read once",
                )
        tables = _with_aliases(found, policy)
        scope = cls(policy, party, access, tables)
        for i, join in enumerate(joins, start=1):
            scope.check_join(join, tables[: i + 1])
        if access.join_required and not any(t.ref.party == party for t in tables):
            raise QueryRejected(
                "join_required",
                f"the policy requires {party}'s queries to read one of {party}'s own tables; "
                f"add one and JOIN it ON person",
            )
        return scope

    def check_join(self, join: exp.Join, visible: list[_Table]) -> None:
        new = visible[-1]
        kind = " ".join(
            str(join.args.get(part) or "").upper() for part in ("method", "side", "kind")
        ).split()
        extra = [
            name
            for name, value in join.args.items()
            if name not in ("this", "on", "using", "side", "kind", "method") and value
        ]
        if kind not in ([], ["INNER"]) or extra:
            what = " ".join(kind) + " JOIN" if kind else "this join"
            raise QueryRejected(
                "join_type",
                f"{what} of {new.ref.name} is not allowed; "
                "use INNER JOIN ... ON a.person = b.person",
            )
        using, on = join.args.get("using"), join.args.get("on")
        if using:
            names = [getattr(item, "name", "").lower() for item in using]
            if names != [PERSON]:
                raise QueryRejected(
                    "join_not_on_person",
                    f"JOIN {new.ref.name} USING ({', '.join(names)}): join on person only",
                )
            return
        if on is None:
            raise QueryRejected(
                "join_type",
                f"{new.ref.name} is joined without ON (a comma or cross join); "
                "use JOIN ... ON a.person = b.person",
            )
        condition = unparen(on)
        ok = False
        if isinstance(condition, exp.EQ):
            left, right = unparen(condition.this), unparen(condition.expression)
            if isinstance(left, exp.Column) and isinstance(right, exp.Column):
                a, b = self.resolve(left, visible), self.resolve(right, visible)
                ok = (
                    a.name == PERSON == b.name
                    and a.table is not b.table
                    and new in (a.table, b.table)
                )
        if not ok:
            raise QueryRejected(
                "join_not_on_person",
                f"JOIN {new.ref.name} ON {fragment(on)}: tables join only on person, "
                f"as in ON {visible[0].called}.person = {new.called}.person",
            )

    def resolve(self, node: exp.Column, tables: list[_Table] | None = None) -> _Column:
        """The vetted column a reference names; refusal when it is unknown or off-limits."""
        tables = self.tables if tables is None else tables
        if isinstance(node.this, exp.Star):
            raise QueryRejected(
                "select_star",
                f"{fragment(node)}: name the columns; SELECT * would release rows",
            )
        name = node.name.lower()
        parts = [node.args.get(p) for p in ("catalog", "db", "table")]
        qualifier = ".".join(p.name.lower() for p in parts if p is not None)
        if node.args.get("catalog") is not None:
            raise QueryRejected("unknown_column", f"{fragment(node)} is not a column name")
        if qualifier:
            matches = [t for t in tables if qualifier in t.qualifiers]
            if not matches:
                raise QueryRejected(
                    "unknown_table",
                    f"{fragment(node)}: '{qualifier}' is not a table or alias in FROM"
                    f" ({', '.join(_describe(t) for t in tables)})",
                )
        elif name == PERSON:
            matches = tables[:1]  # joined on person, every table's person is the same
        else:
            matches = [t for t in tables if name in t.contract.columns]
            if not matches:
                matches = [t for t in tables if name in t.contract.identifiers][:1]
        if len(matches) > 1:
            raise QueryRejected(
                "ambiguous_column",
                f"{name} is a column of {' and '.join(t.ref.name for t in matches)}; "
                f"qualify it, e.g. {matches[0].called}.{name}",
            )
        if not matches:
            raise QueryRejected(
                "unknown_column",
                f"{name} is not a column of {' or '.join(t.ref.name for t in tables)}"
                f"{_lookalike(name)}",
            )
        return self._vet(matches[0], name)

    def _vet(self, table: _Table, name: str) -> _Column:
        if name == PERSON:
            return _Column(table, PERSON, None)
        if name in table.contract.identifiers:
            raise QueryRejected(
                "identifier_column",
                f"{table.ref.name}.{name} is an identifier and is not visible to analysts; "
                "each table has a person column instead",
            )
        policy = table.contract.columns.get(name)
        if policy is None:
            raise QueryRejected(
                "unknown_column",
                f"{name} is not a column of {table.ref.name} (its columns: "
                f"{', '.join(self.usable(table))})",
            )
        if not self.access.may_use(table.ref.name, name):
            raise QueryRejected(
                "column_not_allowed",
                f"{self.party}'s analysts may not use {table.ref.name}.{name} "
                f"(allowed: {', '.join(self.usable(table))})",
            )
        if policy.role == "stored":
            raise QueryRejected(
                "stored_column",
                f"{table.ref.name}.{name} is stored only (it has no declared domain or bounds); "
                "no query may use it",
            )
        return _Column(table, name, policy)

    def usable(self, table: _Table, role: str | None = None) -> list[str]:
        """Columns of ``table`` this party's analysts may use, for error messages."""
        names = [
            name
            for name, column in table.contract.columns.items()
            if column.role != "stored"
            and self.access.may_use(table.ref.name, name)
            and (role is None or column.role == role)
        ]
        return names if role else [PERSON, *names]

    def knows(self, name: str) -> bool:
        """Whether an unqualified name is a column of some table (before output aliases)."""
        return name == PERSON or any(
            name in t.contract.columns or name in t.contract.identifiers for t in self.tables
        )


def _table_name(
    node: exp.Expr, policy: CollaborationPolicy, access: PartyAccess
) -> tuple[str, str, str | None]:
    """(party, dataset, alias) of one FROM item, vetted against the policy."""
    if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
        raise QueryRejected(
            "table_function",
            f"FROM {fragment(node)}: only analysis tables (party.dataset) can be read",
        )
    for arg, value in node.args.items():
        if arg in ("this", "db", "catalog", "alias") or not value:
            continue
        rule = "sample" if arg == "sample" else "unsupported_clause"
        raise QueryRejected(rule, f"FROM {fragment(node)}: only a table name and an alias")
    db, catalog = node.args.get("db"), node.args.get("catalog")
    readable = [
        f"{p}.{d}"
        for p, spec in policy.parties.items()
        for d in spec.datasets
        if access.may_read(f"{p}.{d}")
    ]
    if db is None or catalog is not None:
        raise QueryRejected(
            "unknown_table",
            f"FROM {fragment(node)}: name an analysis table as party.dataset "
            f"({', '.join(readable)})",
        )
    party, dataset = db.name.lower(), node.name.lower()
    name = f"{party}.{dataset}"
    if policy.contract(party, dataset) is None:
        raise QueryRejected(
            "unknown_table",
            f"there is no table {fragment(node)}{_lookalike(name)}; "
            f"the tables are {', '.join(readable)}",
        )
    if not access.may_read(name):
        raise QueryRejected(
            "table_not_allowed",
            f"the policy does not open {name} to your analysts ({', '.join(readable)} are open)",
        )
    alias = node.args.get("alias")
    if alias is None:
        return party, dataset, None
    if alias.args.get("columns"):
        raise QueryRejected(
            "unsupported_clause", f"FROM {fragment(node)}: column aliases on a table"
        )
    given = alias.name.lower()
    if not _ALIAS.match(given):
        raise QueryRejected(
            "bad_alias",
            f"alias {alias.name!r}: use letters, digits and '_' (at most 63), "
            "starting with a letter",
        )
    return party, dataset, given


def _with_aliases(
    found: list[tuple[str, str, str | None]], policy: CollaborationPolicy
) -> list[_Table]:
    """Given aliases win; an unaliased table is named by its dataset, made unique."""
    given = [alias for _, _, alias in found if alias is not None]
    for i, alias in enumerate(given):
        if alias in given[:i]:
            raise QueryRejected("duplicate_alias", f"two tables are called {alias}")
    taken = set(given)
    tables = []
    for party, dataset, given_alias in found:
        contract = policy.contract(party, dataset)
        assert contract is not None  # vetted by _table_name
        if given_alias is not None:
            alias = given_alias
            qualifiers = frozenset({alias})
        else:
            qualifiers = frozenset({dataset, f"{party}.{dataset}"})
            alias = next(
                c
                for c in _candidates(dataset, f"{party}_{dataset}")
                if c not in taken and _ALIAS.match(c)
            )
        taken.add(alias)
        tables.append(_Table(TableRef(party, dataset, alias), contract, qualifiers))
    return tables


def _candidates(*names: str) -> Iterable[str]:
    yield from names
    n = 2
    while True:
        yield f"{names[-1][:58]}_{n}"
        n += 1


def _a(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _lookalike(name: str) -> str:
    """A hint for names that only look right (Cyrillic 'о' for Latin 'o')."""
    return "" if name.isascii() else " (it has non-ASCII letters that may look like Latin ones)"


def _describe(table: _Table) -> str:
    called = table.called
    return called if called == table.ref.name else f"{table.ref.name} AS {called}"


# --- WHERE ------------------------------------------------------------------------------


class _Filters:
    """WHERE as a tree of ``column op literal`` comparisons over vetted columns."""

    def __init__(self, scope: _Scope) -> None:
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
                f"WHERE {fragment(node)} does not depend on any column; remove it",
            )
        if isinstance(node, exp.Column):
            raise QueryRejected(
                "unsupported_predicate",
                f"WHERE {fragment(node)}: compare the column with a value, e.g. = TRUE",
            )
        if isinstance(node, exp.Func):
            raise function_refused(node)
        raise QueryRejected(
            "unsupported_predicate",
            f"WHERE {fragment(node)}: filters are comparisons (= != < <= > >=, IN, BETWEEN, "
            "IS NULL) of a column with literal values, joined by AND, OR and NOT",
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
            raise QueryRejected("subquery", f"{fragment(node)}: IN takes a list of literal values")
        if node.args.get("field") is not None or node.args.get("unnest") is not None:
            raise QueryRejected(
                "unsupported_predicate", f"{fragment(node)}: IN takes a (list, of, values)"
            )
        column = self.column(unparen(node.this), node)
        values = node.expressions
        if not values:
            raise QueryRejected("unsupported_predicate", f"{fragment(node)}: the IN list is empty")
        admitted = [self.value(column, value, node) for value in values]
        unique = tuple(dict.fromkeys(admitted))
        return Comparison(column.ref, "in", unique)

    def between(self, node: exp.Between) -> Comparison:
        if node.args.get("symmetric"):
            raise QueryRejected(
                "unsupported_predicate", f"{fragment(node)}: BETWEEN SYMMETRIC is not allowed"
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
                f"{fragment(node)}: IS is for NULL only; write {column.name} = TRUE instead",
            )
        return Comparison(column.ref, "is null")

    def column(self, node: exp.Expr, predicate: exp.Expr) -> _Column:
        """The filtered column: the one side of a comparison that is a column."""
        if not isinstance(node, exp.Column):
            if literal(node) is not None or isinstance(node, exp.Null):
                if predicate.find(exp.Column) is not None:
                    raise QueryRejected(
                        "unsupported_predicate",
                        f"{fragment(predicate)}: put the column first",
                    )
                raise QueryRejected(
                    "constant_predicate",
                    f"WHERE {fragment(predicate)} does not depend on any column; remove it",
                )
            raise not_a_value(node, predicate)
        column = self.scope.resolve(node)
        if column.role == PERSON:
            raise QueryRejected(
                "person_filter",
                f"WHERE {fragment(predicate)}: person cannot be filtered on; "
                "a filter on person would single out individuals",
            )
        return column

    def value(self, column: _Column, node: exp.Expr, predicate: exp.Expr) -> Scalar:
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
                    f"{shown}: {column.name} is {_a(policy.type)}; compare it with a date like "
                    "'2025-01-31' or DATE '2025-01-31'",
                )
            return time_value(value, policy.type, typed, shown)
        if typed is not None:
            raise QueryRejected(
                "literal_type", f"{shown}: {column.name} is {_a(policy.type)}, not a date"
            )
        if column.role == "metric":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise QueryRejected(
                    "literal_type", f"{shown}: {column.name} is a number; compare it with one"
                )
            return value
        expected = {
            ColumnType.category: "a 'quoted' string",
            ColumnType.integer: "a whole number",
            ColumnType.boolean: "TRUE or FALSE",
        }[policy.type]
        if _kind(value) != _kind_of_type(policy.type):
            raise QueryRejected(
                "literal_type", f"{shown}: {column.name} is {_a(policy.type)}; use {expected}"
            )
        assert policy.domain is not None
        if _domain_key(value, policy.type) not in {
            _domain_key(d, policy.type) for d in policy.domain
        }:
            raise QueryRejected(
                "domain_value_undeclared",
                f"{shown}: {render_scalar(value)} is not a declared value of {column.name} "
                f"({_listing(policy.domain)})",
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


# --- GROUP BY and SELECT ----------------------------------------------------------------


def _group_by(select: exp.Select, scope: _Scope) -> list[_Column]:
    group = select.args.get("group")
    if group is None:
        return []
    for name, value in group.args.items():
        if name != "expressions" and value:
            raise QueryRejected(
                "unsupported_clause",
                f"GROUP BY {name.upper().replace('_', ' ')} is not allowed; list the dimensions",
            )
    items = select.expressions
    aliases = {item.alias.lower(): item.this for item in items if isinstance(item, exp.Alias)}
    keys: list[_Column] = []
    for entry in group.expressions:
        node = unparen(entry)
        shown = fragment(entry)
        if isinstance(node, exp.Literal) and not node.is_string:
            position = number(str(node.this))
            if not isinstance(position, int) or not 1 <= position <= len(items):
                raise QueryRejected(
                    "group_by_position",
                    f"GROUP BY {shown}: the select list has {len(items)} items",
                )
            node = unparen(unalias(items[position - 1]))
            shown = f"{position} ({fragment(node)})"
        elif (
            isinstance(node, exp.Column)
            and not node.table
            and not scope.knows(node.name.lower())
            and node.name.lower() in aliases
        ):
            node = unparen(aliases[node.name.lower()])
        if not isinstance(node, exp.Column):
            if isinstance(node, exp.AggFunc | exp.Count):
                raise QueryRejected(
                    "group_by_not_dimension",
                    f"GROUP BY {shown}: that is an aggregate; group only by dimensions",
                )
            if isinstance(node, exp.Tuple | exp.Rollup | exp.Cube | exp.GroupingSets):
                raise QueryRejected(
                    "unsupported_clause", f"GROUP BY {shown}: list the dimensions one by one"
                )
            if isinstance(node, exp.Func):
                raise function_refused(node)
            raise QueryRejected(
                "group_by_not_dimension", f"GROUP BY {shown}: group only by dimension columns"
            )
        key = scope.resolve(node)
        if key.role != "dimension":
            dims = scope.usable(key.table, "dimension")
            what = "identifies one person" if key.role == PERSON else f"is a {key.role}"
            raise QueryRejected(
                "group_by_not_dimension",
                f"GROUP BY {shown}: {key.name} {what}; group only by dimensions "
                f"({', '.join(dims) or f'{key.table.ref.name} has none'})",
            )
        if key.ref not in [k.ref for k in keys]:
            keys.append(key)
    return keys


@dataclass(frozen=True)
class _Output:
    alias: str | None
    default: str
    key: _Column | None = None
    aggregate: Aggregate | None = None


def _select_list(
    select: exp.Select, scope: _Scope, keys: list[_Column]
) -> tuple[dict[ColumnRef, str], list[Aggregate]]:
    """Output names of the group keys, and the aggregates in select-list order."""
    key_refs = [k.ref for k in keys]
    outputs: list[_Output] = []
    for item in select.expressions:
        alias = None
        if isinstance(item, exp.Alias):
            alias = item.alias
            if not alias.isidentifier() or len(alias) > 63:
                raise QueryRejected(
                    "bad_alias",
                    f"output name {alias[:70]!r}: use letters, digits and '_' (at most 63)",
                )
        node = unparen(unalias(item))
        if isinstance(node, exp.Column):
            column = scope.resolve(node)
            if column.role == PERSON:
                raise QueryRejected(
                    "person_in_output",
                    f"SELECT {fragment(item)}: person is never released; "
                    "count persons with COUNT(DISTINCT person)",
                )
            if column.ref not in key_refs:
                raise QueryRejected("row_level_output", _row_level(fragment(item), column))
            outputs.append(_Output(alias, column.name, key=column))
        else:
            kind, measured = _aggregate(node, scope)
            default = _DEFAULT_NAMES[kind].format(measured.name if measured else "")
            bounds = measured.policy.bounds if measured and measured.policy else None
            ref = measured.ref if measured else None
            outputs.append(_Output(alias, default, aggregate=Aggregate(kind, "", ref, bounds)))
    if not any(o.aggregate for o in outputs):
        raise QueryRejected(
            "no_aggregate", f"select at least one aggregate: {AGGREGATES} are released"
        )
    names = _output_names(outputs, keys)
    key_outputs: dict[ColumnRef, str] = {}
    aggregates: list[Aggregate] = []
    for output, name in zip(outputs, names, strict=False):
        if output.key is not None:
            if output.key.ref in key_outputs:
                raise QueryRejected(
                    "duplicate_output", f"{output.key.name} is selected twice; select it once"
                )
            key_outputs[output.key.ref] = name
        elif output.aggregate is not None:
            aggregates.append(replace(output.aggregate, output=name))
    unselected = [k for k in keys if k.ref not in key_outputs]
    for key, name in zip(unselected, names[len(outputs) :], strict=True):
        key_outputs[key.ref] = name
    return key_outputs, aggregates


def _output_names(outputs: list[_Output], keys: list[_Column]) -> list[str]:
    """Given names as written; default names made unique around them (case-insensitively)."""
    selected = {o.key.ref for o in outputs if o.key is not None}
    wanted = [*(o.alias for o in outputs), *(None for k in keys if k.ref not in selected)]
    defaults = [*(o.default for o in outputs), *(k.name for k in keys if k.ref not in selected)]
    taken: set[str] = set()
    for alias in wanted:
        if alias is not None:
            if alias.casefold() in taken:
                raise QueryRejected("duplicate_output", f"two outputs are called {alias}")
            taken.add(alias.casefold())
    names = []
    for alias, default in zip(wanted, defaults, strict=True):
        name = alias or next(c for c in _candidates(default) if c.casefold() not in taken)
        taken.add(name.casefold())
        names.append(name)
    return names


def _aggregate(node: exp.Expr, scope: _Scope) -> tuple[AggKind, _Column | None]:
    shown = fragment(node)
    if isinstance(node, exp.Filter):
        raise QueryRejected(
            "unsupported_aggregate", f"{shown}: FILTER is not allowed; put the condition in WHERE"
        )
    if isinstance(node, exp.Count):
        arg = node.this
        if isinstance(arg, exp.Star) and not node.expressions and not any(arg.args.values()):
            return "count", None
        if isinstance(arg, exp.Distinct) and not arg.args.get("on") and len(arg.expressions) == 1:
            inner = unparen(arg.expressions[0])
            if isinstance(inner, exp.Column) and scope.resolve(inner).role == PERSON:
                return "count_persons", scope.resolve(inner)
        if isinstance(arg, exp.Distinct):  # sqlglot renders several as a CASE; show them as written
            shown = f"COUNT(DISTINCT {', '.join(fragment(e) for e in arg.expressions)})"
        raise QueryRejected(
            "unsupported_aggregate",
            f"{shown}: counts are COUNT(*) (rows) or COUNT(DISTINCT person) (persons)",
        )
    if isinstance(node, exp.Sum | exp.Avg):
        kind: AggKind = "sum" if isinstance(node, exp.Sum) else "avg"
        arg = unparen(node.this)
        if isinstance(arg, exp.Column):
            column = scope.resolve(arg)
            if column.role != "metric":
                metrics = scope.usable(column.table, "metric")
                raise QueryRejected(
                    "aggregate_not_metric",
                    f"{shown}: {column.name} is a {column.role}; {kind.upper()} takes a metric "
                    f"({', '.join(metrics) or f'{column.table.ref.name} has none'})",
                )
            return kind, column
        if isinstance(arg, exp.Distinct):
            raise QueryRejected("unsupported_aggregate", f"{shown}: DISTINCT inside {kind.upper()}")
        if isinstance(arg, exp.Func):
            raise function_refused(arg)
        raise QueryRejected(
            "expression", f"{shown}: {kind.upper()} takes one metric column, not an expression"
        )
    if isinstance(node, exp.Star):
        raise QueryRejected("select_star", "SELECT *: name the columns; it would release rows")
    if isinstance(node, exp.Func):
        raise function_refused(node)
    what = "a constant" if literal(node) is not None else "an expression"
    raise QueryRejected(
        "expression",
        f"SELECT {shown}: that is {what}; select grouped dimensions and {AGGREGATES} only "
        "(compute on the released numbers afterwards)",
    )


def _row_level(shown: str, column: _Column) -> str:
    if column.role == "metric":
        return f"SELECT {shown}: {column.name} is not grouped; release it as SUM or AVG"
    if column.role == "dimension":
        return f"SELECT {shown}: {column.name} is not grouped; add it to GROUP BY"
    return f"SELECT {shown}: {column.name} is a {column.role} column; filter on it in WHERE"


# --- domains -------------------------------------------------------------------------------


def _domain(key: _Column, where: Filter | None) -> tuple[Scalar, ...]:
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


def _listing(values: list[Scalar], limit: int = 12) -> str:
    shown = ", ".join(render_scalar(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} values)" if len(values) > limit else "")
