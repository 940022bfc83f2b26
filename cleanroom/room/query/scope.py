"""The FROM clause of restricted SQL: its tables, their join on ``person``, and columns.

Every column a query names resolves here, against the tables in FROM, and is
vetted against the policy: identifiers and stored-only columns are never
visible, and a party's analysts see only the tables and columns the policy
opens to them. Tables join on ``person`` only, so contribution bounding per
person holds across tables (``join_not_on_person``, ``join_type``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlglot import exp

from cleanroom.errors import T_
from cleanroom.room.policy.models import CollaborationPolicy, ColumnPolicy, DatasetContract
from cleanroom.room.policy.privacy import PartyAccess
from cleanroom.room.query.parse import PERSON, QueryRejected, fragment, unparen
from cleanroom.room.query.plan import ColumnRef, TableRef

_ALIAS = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # table aliases end up in compiled SQL


@dataclass(frozen=True)
class Table:
    ref: TableRef
    contract: DatasetContract
    qualifiers: frozenset[str]  # how column references may name this table

    @property
    def called(self) -> str:
        """How the analyst's query names this table: its alias, else party.dataset."""
        return self.ref.alias if self.qualifiers == {self.ref.alias} else self.ref.name


@dataclass(frozen=True)
class Column:
    table: Table
    name: str
    policy: ColumnPolicy | None  # None for person, which the contract does not list

    @property
    def ref(self) -> ColumnRef:
        return ColumnRef(self.table.ref.alias, self.name)

    @property
    def role(self) -> str:
        return PERSON if self.policy is None else self.policy.role


class Scope:
    """The FROM clause: which tables the query reads and how its columns resolve."""

    def __init__(
        self, policy: CollaborationPolicy, party: str, access: PartyAccess, tables: list[Table]
    ) -> None:
        self.policy = policy
        self.party = party
        self.access = access
        self.tables = tables

    @classmethod
    def from_query(
        cls, select: exp.Select, policy: CollaborationPolicy, party: str, access: PartyAccess
    ) -> Scope:
        source = select.args.get("from_")
        if source is None:
            raise QueryRejected(
                "missing_from", T_("the query reads no table; add FROM party.dataset")
            )
        joins: list[exp.Join] = select.args.get("joins") or []
        nodes = [source.this, *(join.this for join in joins)]
        found = [_table_name(node, policy, access) for node in nodes]
        names = [f"{p}.{d}" for p, d, _ in found]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise QueryRejected(
                    "duplicate_table",
                    T_("%(name)s appears twice in FROM; each table may be read once", name=name),
                )
        tables = _with_aliases(found, policy)
        scope = cls(policy, party, access, tables)
        for i, join in enumerate(joins, start=1):
            scope.check_join(join, tables[: i + 1])
        if access.join_required and not any(t.ref.party == party for t in tables):
            raise QueryRejected(
                "join_required",
                T_(
                    "the policy requires %(party)s's queries to read one of %(party)s's own "
                    "tables; add one and JOIN it ON person",
                    party=party,
                ),
            )
        return scope

    def check_join(self, join: exp.Join, visible: list[Table]) -> None:
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
                T_(
                    "%(what)s of %(ref)s is not allowed; use INNER JOIN ... ON a.person = b.person",
                    what=what,
                    ref=new.ref.name,
                ),
            )
        using, on = join.args.get("using"), join.args.get("on")
        if using:
            names = [getattr(item, "name", "").lower() for item in using]
            if names != [PERSON]:
                raise QueryRejected(
                    "join_not_on_person",
                    T_(
                        "JOIN %(ref)s USING (%(names)s): join on person only",
                        ref=new.ref.name,
                        names=", ".join(names),
                    ),
                )
            return
        if on is None:
            raise QueryRejected(
                "join_type",
                T_(
                    "%(ref)s is joined without ON (a comma or cross join); use JOIN ... ON "
                    "a.person = b.person",
                    ref=new.ref.name,
                ),
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
                T_(
                    "JOIN %(ref)s ON %(clause)s: tables join only on person, as in ON "
                    "%(called)s.person = %(called2)s.person",
                    ref=new.ref.name,
                    clause=fragment(on),
                    called=visible[0].called,
                    called2=new.called,
                ),
            )

    def resolve(self, node: exp.Column, tables: list[Table] | None = None) -> Column:
        """The vetted column a reference names; refusal when it is unknown or off-limits."""
        tables = self.tables if tables is None else tables
        if isinstance(node.this, exp.Star):
            raise QueryRejected(
                "select_star",
                T_(
                    "%(clause)s: name the columns; SELECT * would release rows",
                    clause=fragment(node),
                ),
            )
        name = node.name.lower()
        parts = [node.args.get(p) for p in ("catalog", "db", "table")]
        qualifier = ".".join(p.name.lower() for p in parts if p is not None)
        if node.args.get("catalog") is not None:
            raise QueryRejected(
                "unknown_column", T_("%(clause)s is not a column name", clause=fragment(node))
            )
        if qualifier:
            matches = [t for t in tables if qualifier in t.qualifiers]
            if not matches:
                raise QueryRejected(
                    "unknown_table",
                    T_(
                        "%(clause)s: '%(qualifier)s' is not a table or alias in FROM (%(items)s)",
                        clause=fragment(node),
                        qualifier=qualifier,
                        items=", ".join(_describe(t) for t in tables),
                    ),
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
                T_(
                    "%(name)s is a column of %(items)s; qualify it, e.g. %(called)s.%(name)s",
                    name=name,
                    items=" and ".join(t.ref.name for t in matches),
                    called=matches[0].called,
                ),
            )
        if not matches:
            raise QueryRejected(
                "unknown_column",
                T_(
                    "%(name)s is not a column of %(items)s%(lookalike)s",
                    name=name,
                    items=" or ".join(t.ref.name for t in tables),
                    lookalike=_lookalike(name),
                ),
            )
        return self._vet(matches[0], name)

    def _vet(self, table: Table, name: str) -> Column:
        if name == PERSON:
            return Column(table, PERSON, None)
        if name in table.contract.identifiers:
            raise QueryRejected(
                "identifier_column",
                T_(
                    "%(ref)s.%(name)s is an identifier and is not visible to analysts; each "
                    "table has a person column instead",
                    ref=table.ref.name,
                    name=name,
                ),
            )
        policy = table.contract.columns.get(name)
        if policy is None:
            raise QueryRejected(
                "unknown_column",
                T_(
                    "%(name)s is not a column of %(ref)s (its columns: %(usable)s)",
                    name=name,
                    ref=table.ref.name,
                    usable=", ".join(self.usable(table)),
                ),
            )
        if not self.access.may_use(table.ref.name, name):
            raise QueryRejected(
                "column_not_allowed",
                T_(
                    "%(party)s's analysts may not use %(ref)s.%(name)s (allowed: %(usable)s)",
                    party=self.party,
                    ref=table.ref.name,
                    name=name,
                    usable=", ".join(self.usable(table)),
                ),
            )
        if policy.role == "stored":
            raise QueryRejected(
                "stored_column",
                T_(
                    "%(ref)s.%(name)s is stored only (it has no declared domain or bounds); "
                    "no query may use it",
                    ref=table.ref.name,
                    name=name,
                ),
            )
        return Column(table, name, policy)

    def usable(self, table: Table, role: str | None = None) -> list[str]:
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
            T_(
                "FROM %(clause)s: only analysis tables (party.dataset) can be read",
                clause=fragment(node),
            ),
        )
    for arg, value in node.args.items():
        if arg in ("this", "db", "catalog", "alias") or not value:
            continue
        rule = "sample" if arg == "sample" else "unsupported_clause"
        raise QueryRejected(
            rule, T_("FROM %(clause)s: only a table name and an alias", clause=fragment(node))
        )
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
            T_(
                "FROM %(clause)s: name an analysis table as party.dataset (%(readable)s)",
                clause=fragment(node),
                readable=", ".join(readable),
            ),
        )
    party, dataset = db.name.lower(), node.name.lower()
    name = f"{party}.{dataset}"
    if policy.contract(party, dataset) is None:
        raise QueryRejected(
            "unknown_table",
            T_(
                "there is no table %(clause)s%(lookalike)s; the tables are %(readable)s",
                clause=fragment(node),
                lookalike=_lookalike(name),
                readable=", ".join(readable),
            ),
        )
    if not access.may_read(name):
        raise QueryRejected(
            "table_not_allowed",
            T_(
                "the policy does not open %(name)s to your analysts (%(readable)s are open)",
                name=name,
                readable=", ".join(readable),
            ),
        )
    alias = node.args.get("alias")
    if alias is None:
        return party, dataset, None
    if alias.args.get("columns"):
        raise QueryRejected(
            "unsupported_clause",
            T_("FROM %(clause)s: column aliases on a table", clause=fragment(node)),
        )
    given = alias.name.lower()
    if not _ALIAS.match(given):
        raise QueryRejected(
            "bad_alias",
            T_(
                "alias %(alias)s: use letters, digits and '_' (at most 63), starting with a letter",
                alias=repr(alias.name),
            ),
        )
    return party, dataset, given


def _with_aliases(
    found: list[tuple[str, str, str | None]], policy: CollaborationPolicy
) -> list[Table]:
    """Given aliases win; an unaliased table is named by its dataset, made unique."""
    given = [alias for _, _, alias in found if alias is not None]
    for i, alias in enumerate(given):
        if alias in given[:i]:
            raise QueryRejected(
                "duplicate_alias", T_("two tables are called %(alias)s", alias=alias)
            )
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
                for c in candidates(dataset, f"{party}_{dataset}")
                if c not in taken and _ALIAS.match(c)
            )
        taken.add(alias)
        tables.append(Table(TableRef(party, dataset, alias), contract, qualifiers))
    return tables


def candidates(*names: str) -> Iterable[str]:
    yield from names
    n = 2
    while True:
        yield f"{names[-1][:58]}_{n}"
        n += 1


def _lookalike(name: str) -> str:
    """A hint for names that only look right (Cyrillic 'о' for Latin 'o')."""
    return "" if name.isascii() else " (it has non-ASCII letters that may look like Latin ones)"


def _describe(table: Table) -> str:
    called = table.called
    return called if called == table.ref.name else f"{table.ref.name} AS {called}"
