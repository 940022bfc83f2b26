"""GROUP BY and the select list of restricted SQL: the released keys and aggregates.

Only released aggregates leave the room, never a row (``row_level_output``)
nor ``person`` (``person_in_output``), and every released number has a
sensitivity the engine can bound: no arithmetic, functions or CASE. Groups are
dimensions only (``group_by_not_dimension``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlglot import exp

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
                f"GROUP BY {name.upper().replace('_', ' ')} is not allowed; list the dimensions",
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
            what = "identifies one person" if key.role == PERSON else f"is {a(key.role)}"
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


def _output_names(outputs: list[_Output], keys: list[Column]) -> list[str]:
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
        name = alias or next(c for c in candidates(default) if c.casefold() not in taken)
        taken.add(name.casefold())
        names.append(name)
    return names


def _aggregate(node: exp.Expr, scope: Scope) -> tuple[AggKind, Column | None]:
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
                    f"{shown}: {column.name} is {a(column.role)}; {kind.upper()} takes a metric "
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


def _row_level(shown: str, column: Column) -> str:
    if column.role == "metric":
        return f"SELECT {shown}: {column.name} is not grouped; release it as SUM or AVG"
    if column.role == "dimension":
        return f"SELECT {shown}: {column.name} is not grouped; add it to GROUP BY"
    return f"SELECT {shown}: {column.name} is {a(column.role)} column; filter on it in WHERE"
