"""GROUP BY and the select list of restricted SQL: the released keys and aggregates.

Only released aggregates leave the room, never a row (``row_level_output``)
nor ``person`` (``person_in_output``), and every released number has a
sensitivity the engine can bound: no arithmetic, functions or CASE. Groups are
dimensions only (``group_by_not_dimension``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlglot import exp

from cleanroom.errors import T_
from cleanroom.room.query.parse import (
    AGGREGATES,
    PERSON,
    QueryRejected,
    fragment,
    function_refused,
    literal,
    number,
    unalias,
    unparen,
)
from cleanroom.room.query.plan import AggKind, Aggregate, ColumnRef
from cleanroom.room.query.scope import Column, Scope, candidates
from cleanroom.wording import a

_DEFAULT_NAMES: dict[AggKind, str] = {
    "count": "count",
    "count_persons": "persons",
    "sum": "sum_{}",
    "avg": "avg_{}",
}


def group_keys(select: exp.Select, scope: Scope) -> list[Column]:
    group = select.args.get("group")
    if group is None:
        return []
    for name, value in group.args.items():
        if name != "expressions" and value:
            raise QueryRejected(
                "unsupported_clause",
                T_(
                    "GROUP BY %(replace)s is not allowed; list the dimensions",
                    replace=name.upper().replace("_", " "),
                ),
            )
    items = select.expressions
    aliases = {item.alias.lower(): item.this for item in items if isinstance(item, exp.Alias)}
    keys: list[Column] = []
    for entry in group.expressions:
        node = unparen(entry)
        shown = fragment(entry)
        if isinstance(node, exp.Literal) and not node.is_string:
            position = number(str(node.this))
            if not isinstance(position, int) or not 1 <= position <= len(items):
                raise QueryRejected(
                    "group_by_position",
                    T_(
                        "GROUP BY %(shown)s: the select list has %(count)s items",
                        shown=shown,
                        count=len(items),
                    ),
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
                    T_(
                        "GROUP BY %(shown)s: that is an aggregate; group only by dimensions",
                        shown=shown,
                    ),
                )
            if isinstance(node, exp.Tuple | exp.Rollup | exp.Cube | exp.GroupingSets):
                raise QueryRejected(
                    "unsupported_clause",
                    T_("GROUP BY %(shown)s: list the dimensions one by one", shown=shown),
                )
            if isinstance(node, exp.Func):
                raise function_refused(node)
            raise QueryRejected(
                "group_by_not_dimension",
                T_("GROUP BY %(shown)s: group only by dimension columns", shown=shown),
            )
        key = scope.resolve(node)
        if key.role != "dimension":
            dims = scope.usable(key.table, "dimension")
            what = "identifies one person" if key.role == PERSON else f"is {a(key.role)}"
            raise QueryRejected(
                "group_by_not_dimension",
                T_(
                    "GROUP BY %(shown)s: %(key)s %(what)s; group only by dimensions (%(value)s)",
                    shown=shown,
                    key=key.name,
                    what=what,
                    value=", ".join(dims) or f"{key.table.ref.name} has none",
                ),
            )
        if key.ref not in [k.ref for k in keys]:
            keys.append(key)
    return keys


@dataclass(frozen=True)
class _Output:
    alias: str | None
    default: str
    key: Column | None = None
    aggregate: Aggregate | None = None


def select_list(
    select: exp.Select, scope: Scope, keys: list[Column]
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
                    T_(
                        "output name %(alias)s: use letters, digits and '_' (at most 63)",
                        alias=repr(alias[:70]),
                    ),
                )
        node = unparen(unalias(item))
        if isinstance(node, exp.Column):
            column = scope.resolve(node)
            if column.role == PERSON:
                raise QueryRejected(
                    "person_in_output",
                    T_(
                        "SELECT %(clause)s: person is never released; count persons with "
                        "COUNT(DISTINCT person)",
                        clause=fragment(item),
                    ),
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
            "no_aggregate",
            T_("select at least one aggregate: %(aggregates)s are released", aggregates=AGGREGATES),
        )
    names = _output_names(outputs, keys)
    key_outputs: dict[ColumnRef, str] = {}
    aggregates: list[Aggregate] = []
    for output, name in zip(outputs, names, strict=False):
        if output.key is not None:
            if output.key.ref in key_outputs:
                raise QueryRejected(
                    "duplicate_output",
                    T_("%(key)s is selected twice; select it once", key=output.key.name),
                )
            key_outputs[output.key.ref] = name
        elif output.aggregate is not None:
            aggregates.append(replace(output.aggregate, output=name))
    unselected = [k for k in keys if k.ref not in key_outputs]
    for key, name in zip(unselected, names[len(outputs) :], strict=True):
        key_outputs[key.ref] = name
    return key_outputs, aggregates


def _output_names(outputs: list[_Output], keys: list[Column]) -> list[str]:
    """Given names as written; default names made unique around them (case-insensitively)."""
    selected = {o.key.ref for o in outputs if o.key is not None}
    wanted = [*(o.alias for o in outputs), *(None for k in keys if k.ref not in selected)]
    defaults = [*(o.default for o in outputs), *(k.name for k in keys if k.ref not in selected)]
    taken: set[str] = set()
    for alias in wanted:
        if alias is not None:
            if alias.casefold() in taken:
                raise QueryRejected(
                    "duplicate_output", T_("two outputs are called %(alias)s", alias=alias)
                )
            taken.add(alias.casefold())
    names = []
    for alias, default in zip(wanted, defaults, strict=True):
        name = alias or next(c for c in candidates(default) if c.casefold() not in taken)
        taken.add(name.casefold())
        names.append(name)
    return names


def _aggregate(node: exp.Expr, scope: Scope) -> tuple[AggKind, Column | None]:
    shown = fragment(node)
    if isinstance(node, exp.Filter):
        raise QueryRejected(
            "unsupported_aggregate",
            T_("%(shown)s: FILTER is not allowed; put the condition in WHERE", shown=shown),
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
            T_(
                "%(shown)s: counts are COUNT(*) (rows) or COUNT(DISTINCT person) (persons)",
                shown=shown,
            ),
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
                    T_(
                        "%(shown)s: %(column)s is %(a)s; %(kind)s takes a metric (%(value)s)",
                        shown=shown,
                        column=column.name,
                        a=a(column.role),
                        kind=kind.upper(),
                        value=", ".join(metrics) or f"{column.table.ref.name} has none",
                    ),
                )
            return kind, column
        if isinstance(arg, exp.Distinct):
            raise QueryRejected(
                "unsupported_aggregate",
                T_("%(shown)s: DISTINCT inside %(kind)s", shown=shown, kind=kind.upper()),
            )
        if isinstance(arg, exp.Func):
            raise function_refused(arg)
        raise QueryRejected(
            "expression",
            T_(
                "%(shown)s: %(kind)s takes one metric column, not an expression",
                shown=shown,
                kind=kind.upper(),
            ),
        )
    if isinstance(node, exp.Star):
        raise QueryRejected("select_star", T_("SELECT *: name the columns; it would release rows"))
    if isinstance(node, exp.Func):
        raise function_refused(node)
    what = "a constant" if literal(node) is not None else "an expression"
    raise QueryRejected(
        "expression",
        T_(
            "SELECT %(shown)s: that is %(what)s; select grouped dimensions and "
            "%(aggregates)s only (compute on the released numbers afterwards)",
            shown=shown,
            what=what,
            aggregates=AGGREGATES,
        ),
    )


def _row_level(shown: str, column: Column) -> str:
    if column.role == "metric":
        return str(
            T_(
                "SELECT %(shown)s: %(column)s is not grouped; release it as SUM or AVG",
                shown=shown,
                column=column.name,
            )
        )
    if column.role == "dimension":
        return str(
            T_(
                "SELECT %(shown)s: %(column)s is not grouped; add it to GROUP BY",
                shown=shown,
                column=column.name,
            )
        )
    return str(
        T_(
            "SELECT %(shown)s: %(column)s is %(a)s column; filter on it in WHERE",
            shown=shown,
            column=column.name,
            a=a(column.role),
        )
    )
