"""The SQL-text side of the query gate: reading an analyst's query, writing the canonical one.

Reading knows nothing of the policy. It refuses what no restricted query ever
needs (comments, several statements, anything but a SELECT, subqueries, CTEs,
set operations, windows, ordering), so the policy side
(:mod:`cleanroom.room.query.check`) only ever sees a flat ``SELECT ... FROM ...
[JOIN ...] [WHERE ...] [GROUP BY ...]``; it also turns literals into values.
Writing renders a checked plan as normalized SQL, the cache key of a release.

Comments are refused rather than stripped: an analyst never needs one, and a
comment is where SQL smuggling hides (``/*`` around a clause, ``--`` cutting
off the rest of a line), so a query that has one is more likely hostile than
careless.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from cleanroom import jalali
from cleanroom.contract.spec import ColumnType
from cleanroom.errors import T_, Text, UserError
from cleanroom.i18n import N_
from cleanroom.room.policy.models import CollaborationPolicy
from cleanroom.room.query.plan import BoolOp, ColumnRef, Comparison, Filter, QueryPlan, Scalar
from cleanroom.sql import literal_sql, quote_column
from cleanroom.text import fold_digits, quoted

DIALECT = "duckdb"
PERSON = "person"  # the privacy unit's column in every analysis table
MAX_SQL_CHARS = 10_000  # a restricted query is a screenful; more is a mistake or an attack
MAX_NESTING = 32  # parentheses deep; the parser recurses per level
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_QUERY_STARTS = {TokenType.SELECT, TokenType.FROM, TokenType.WITH, TokenType.L_PAREN}


class QueryRejected(UserError):
    """The query breaks one rule of the restricted SQL; ``rule`` names which.

    ``rule`` is a stable id (for scripts, tests and the audit log);
    ``message`` names the offending piece of the query in the analyst's terms.
    Nothing of a rejected query is ever run, not even part of it.
    """

    code = "query_rejected"
    status = 400

    def __init__(self, rule: str, message: str | Text, *, clause: str | None = None) -> None:
        self.rule = rule
        self.message = str(message)  # English, as scripts and the audit trail read it
        self.clause = clause if clause is not None else _clause_of(self.message)
        super().__init__(message)

    @property
    def details(self) -> dict[str, object]:
        """The rule broken and the piece of the query at fault (the analyst's own text)."""
        return {"rule": self.rule, "clause": self.clause}


def _clause_of(message: str) -> str | None:
    """The quoted piece that opens most messages (``SELECT *: ...``), if there is one."""
    head, sep, _ = message.partition(": ")
    return head if sep and head and len(head) <= 120 else None


def fragment(node: exp.Expr, limit: int = 80) -> str:
    """The piece of a query an error message quotes, short enough to read."""
    try:
        text = node.sql(dialect=DIALECT)
    except (SqlglotError, RecursionError, ValueError):  # pragma: no cover - defensive
        text = type(node).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_select(sql: str) -> exp.Select:
    """The one SELECT of ``sql``, free of constructs restricted SQL never allows."""
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRejected(
            "too_long",
            T_(
                "the query is %(count)s characters long; the limit is %(max_sql_chars)s",
                count=len(sql),
                max_sql_chars=MAX_SQL_CHARS,
            ),
        )
    sql = sql.removeprefix("\ufeff")  # a byte-order mark from a file is not part of the query
    control = next((i for i, ch in enumerate(sql) if _CONTROL.match(ch)), None)
    if control is not None:
        raise QueryRejected(
            "syntax",
            T_(
                "the query has a control character (code %(ord)s) at position "
                "%(control)s; only text, spaces, tabs and new lines are allowed",
                ord=ord(sql[control]),
                control=control + 1,
            ),
        )
    tokens = _tokens(sql)
    _refuse_comments(sql, tokens)
    _one_statement(tokens)
    first = next(t for t in tokens if t.token_type != TokenType.SEMICOLON)
    if first.token_type not in _QUERY_STARTS:  # never hand other statements to the parser
        raise QueryRejected("not_select", _not_select(first.text))
    _shallow(tokens)
    tree = _parse(sql)
    if isinstance(tree, exp.SetOperation):
        raise QueryRejected(
            "set_operation",
            T_("%(key)s combines queries; ask one SELECT at a time", key=tree.key.upper()),
        )
    if isinstance(tree, exp.Subquery):
        raise QueryRejected("subquery", T_("the whole query is in parentheses; remove them"))
    if not isinstance(tree, exp.Select):
        raise QueryRejected("not_select", _not_select(tree.key))
    _refuse_constructs(tree)
    _refuse_clauses(tree)
    return tree


def _tokens(sql: str) -> list[Token]:
    try:
        return list(sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql))
    except SqlglotError as err:
        raise QueryRejected(
            "syntax",
            T_(
                "the query cannot be read; is a quote or comment left open? (%(first_line)s)",
                first_line=_first_line(str(err)),
            ),
        ) from None
    except Exception:  # hostile text must never crash the gate
        raise QueryRejected("syntax", T_("the query cannot be read")) from None


def _refuse_comments(sql: str, tokens: list[Token]) -> None:
    """Comments are the only thing the tokenizer skips besides white space.

    The tokenizer keeps most comments on the next token, but not all (a text
    that is only a comment has no token to keep it on), so the text between
    tokens is checked too. A command token (CALL, EXPLAIN) swallows the rest
    of its statement with spans that do not add up; the gap check stops there,
    and the statement is refused as not a SELECT.
    """
    commented = next((token for token in tokens if token.comments), None)
    if commented is not None:
        raise QueryRejected(
            "comment",
            T_("comments are not allowed (one is next to '%(text)s')", text=commented.text[:40]),
        )
    position = 0
    for token in tokens:
        if token.token_type == TokenType.COMMAND:
            return
        _blank(sql[position : token.start])
        position = token.end + 1
    _blank(sql[position:])


def _blank(gap: str) -> None:
    if gap.strip():
        if "--" in gap or "/*" in gap:
            raise QueryRejected("comment", T_("comments are not allowed"))
        raise QueryRejected(
            "syntax", T_("unexpected characters %(gap)s in the query", gap=repr(gap.strip()[:20]))
        )


def _one_statement(tokens: list[Token]) -> None:
    statements = 0
    in_statement = False
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            in_statement = False
        elif not in_statement:
            statements += 1
            in_statement = True
    if statements == 0:
        raise QueryRejected("syntax", T_("the query is empty"))
    if statements > 1:
        raise QueryRejected(
            "multiple_statements",
            T_("one statement per query; this text has %(statements)s", statements=statements),
        )


def _shallow(tokens: list[Token]) -> None:
    depth = 0
    for token in tokens:
        if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE):
            depth += 1
            if depth > MAX_NESTING:
                raise QueryRejected(
                    "too_complex",
                    T_("parentheses nest more than %(max_nesting)s deep", max_nesting=MAX_NESTING),
                )
        elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE):
            depth -= 1


def _parse(sql: str) -> exp.Expr:
    try:
        trees = [tree for tree in sqlglot.parse(sql, dialect=DIALECT) if tree is not None]
    except ParseError as err:
        raise QueryRejected("syntax", _syntax_message(err)) from None
    except RecursionError:
        raise QueryRejected("too_complex", T_("the query nests too deeply")) from None
    except Exception:
        raise QueryRejected("syntax", T_("the query cannot be read")) from None
    if len(trees) != 1:  # pragma: no cover - the token count already ensured one
        raise QueryRejected("multiple_statements", T_("one statement per query"))
    return trees[0]


_TOKEN_REPR = re.compile(r"<Token token_type: [\w.]+, text: (.*?), line: \d+, col: \d+.*?>")
_CLASS_REPR = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def _syntax_message(err: ParseError) -> str:
    if not err.errors:
        return str(T_("the query does not parse: %(first_line)s", first_line=_first_line(str(err))))
    first = err.errors[0]
    what = _TOKEN_REPR.sub(lambda m: repr(m.group(1)), str(first.get("description", "")))
    what = _CLASS_REPR.sub(r"\1", what)
    line, col = first.get("line"), first.get("col")
    if line is None or col is None:
        return str(T_("the query does not parse: %(what)s", what=what))
    return str(
        T_(
            "line %(line)s, column %(col)s: the query does not parse: %(what)s",
            line=line,
            col=col,
            what=what,
        )
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "unknown error"


def _not_select(word: str) -> str:
    return str(T_("only SELECT queries can be asked, not %(word)s", word=word.upper()[:20]))


def _walk(tree: exp.Expr) -> Iterator[tuple[exp.Expr, int]]:
    """Nodes with their nesting depth; a chain of ANDs (or ORs) counts as one level."""
    stack: list[tuple[exp.Expr, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        for child in node.iter_expressions(reverse=True):
            chained = isinstance(node, exp.Connector) and type(child) is type(node)
            stack.append((child, depth if chained else depth + 1))


def _refuse_constructs(tree: exp.Select) -> None:
    """Constructs refused wherever they appear, so the rule names the construct itself."""
    for node, depth in _walk(tree):
        if depth > 4 * MAX_NESTING:
            raise QueryRejected("too_complex", T_("the query nests too deeply"))
        if node is tree:
            continue
        if isinstance(node, exp.With | exp.CTE):
            raise QueryRejected("cte", T_("WITH (common table expressions) is not allowed"))
        if isinstance(node, exp.SetOperation):
            raise QueryRejected(
                "set_operation",
                T_("%(key)s is not allowed; ask one SELECT at a time", key=node.key.upper()),
            )
        if isinstance(node, exp.Query | exp.Subquery | exp.Exists):
            raise QueryRejected(
                "subquery",
                T_(
                    "subqueries are not allowed (%(clause)s); a query is one flat SELECT "
                    "over party.dataset tables",
                    clause=fragment(node),
                ),
            )
        if isinstance(node, exp.Window | exp.WindowSpec):
            raise QueryRejected(
                "window_function",
                T_("window functions are not allowed (%(clause)s)", clause=fragment(node)),
            )
        if isinstance(node, exp.Lateral):
            raise QueryRejected(
                "join_type", T_("LATERAL is not allowed; join tables only ON a.person = b.person")
            )
        if isinstance(node, exp.Placeholder | exp.Parameter):
            raise QueryRejected(
                "bad_literal",
                T_(
                    "parameters (%(clause)s) are not allowed; write the value",
                    clause=fragment(node),
                ),
            )


# Select arguments a restricted query may use; every other one has a rule.
_ALLOWED_CLAUSES = {"expressions", "from_", "joins", "where", "group"}
_CLAUSE_RULES = {
    "with_": ("cte", N_("WITH (common table expressions) is not allowed")),
    "distinct": ("distinct_select", N_("SELECT DISTINCT is not allowed; use GROUP BY")),
    "having": (
        "having",
        N_(
            "HAVING is not allowed: groups are released or suppressed by their noisy size, "
            "filter rows with WHERE instead"
        ),
    ),
    "order": ("order_or_limit", N_("ORDER BY is not allowed; sort the released table yourself")),
    "sort": ("order_or_limit", N_("SORT BY is not allowed; sort the released table yourself")),
    "cluster": ("order_or_limit", N_("CLUSTER BY is not allowed")),
    "distribute": ("order_or_limit", N_("DISTRIBUTE BY is not allowed")),
    "limit": ("order_or_limit", N_("LIMIT is not allowed: every declared group is released")),
    "offset": ("order_or_limit", N_("OFFSET is not allowed: every declared group is released")),
    "qualify": ("qualify", N_("QUALIFY is not allowed")),
    "sample": ("sample", N_("SAMPLE is not allowed: the release is computed over all rows")),
    "windows": ("window_function", N_("WINDOW clauses are not allowed")),
    "laterals": (
        "join_type",
        N_("LATERAL is not allowed; join tables only ON a.person = b.person"),
    ),
    "into": (
        "not_select",
        N_("SELECT INTO writes a table; only plain SELECT queries can be asked"),
    ),
    "locks": ("unsupported_clause", N_("FOR UPDATE / FOR SHARE is not allowed")),
}


def _refuse_clauses(tree: exp.Select) -> None:
    for name, value in tree.args.items():
        if name in _ALLOWED_CLAUSES or value is None or value is False or value == []:
            continue
        rule, message = _CLAUSE_RULES.get(
            name,
            (
                "unsupported_clause",
                str(T_("%(clause)s is not allowed here", clause=name.rstrip("_").upper())),
            ),
        )
        raise QueryRejected(rule, message)


# Gregorian or Solar Hijri (a year 1300-1499), ``-`` or ``/``; digits folded first.
_TIME_TEXT = re.compile(
    r"^(?P<year>\d{4})(?P<sep>[-/])(?P<month>\d{1,2})(?P=sep)(?P<day>\d{1,2})"
    r"(?:[ T](?P<clock>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?))?$"
)
_DATE_TYPES = {exp.DataType.Type.DATE}
_TIMESTAMP_TYPES = {
    exp.DataType.Type.TIMESTAMP,
    exp.DataType.Type.TIMESTAMPNTZ,
    exp.DataType.Type.DATETIME,
}
_Namer = Callable[[ColumnRef], str]
_Typer = Callable[[ColumnRef], ColumnType | None]
AGGREGATES = "COUNT(*), COUNT(DISTINCT person), SUM(metric) and AVG(metric)"


# --- reading values ----------------------------------------------------------------


def unparen(node: exp.Expr) -> exp.Expr:
    """Parentheses change nothing in a restricted query; see through them."""
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def unalias(node: exp.Expr) -> exp.Expr:
    """A select item without its output name."""
    return node.this if isinstance(node, exp.Alias) else node


def literal(node: exp.Expr) -> tuple[Scalar, str | None] | None:  # noqa: PLR0911
    """(value, 'date' | 'timestamp' | None) of a literal; None when ``node`` is not one."""
    node = unparen(node)
    if isinstance(node, exp.Boolean):
        return bool(node.this), None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this), None
        return number(str(node.this)), None
    if isinstance(node, exp.Neg):
        inner = literal(node.this)
        if (
            inner is not None
            and isinstance(inner[0], int | float)
            and not isinstance(inner[0], bool)
        ):
            return -inner[0], None
        return None
    if (
        isinstance(node, exp.Cast)
        and isinstance(node.this, exp.Literal)
        and node.this.is_string
        and node.to.this in _DATE_TYPES | _TIMESTAMP_TYPES
    ):
        return str(node.this.this), "date" if node.to.this in _DATE_TYPES else "timestamp"
    return None


def number(text: str) -> int | float:
    """A numeric literal the engines can hold exactly as written (no inf, no 128-bit)."""
    try:
        number: int | float = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise QueryRejected(
                "bad_literal", T_("%(text)s is not a number", text=text[:40])
            ) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise QueryRejected("bad_literal", T_("%(text)s is out of range", text=text[:40]))
    if isinstance(number, int) and abs(number) >= 2**63:
        raise QueryRejected("bad_literal", T_("%(text)s is out of range", text=text[:40]))
    return number


def not_a_value(node: exp.Expr, predicate: exp.Expr) -> QueryRejected:
    """The refusal for a non-literal where a filter needs a value, naming what it is."""
    shown = fragment(predicate)
    if isinstance(node, exp.Column):
        return QueryRejected(
            "column_comparison",
            T_("WHERE %(shown)s: a column can only be compared with literal values", shown=shown),
        )
    if isinstance(node, exp.Null):
        return QueryRejected(
            "bad_literal", T_("WHERE %(shown)s: to test for NULL write IS NULL", shown=shown)
        )
    if isinstance(
        node, exp.ByteString | exp.RawString | exp.UnicodeString | exp.HexString | exp.BitString
    ):
        return QueryRejected(
            "bad_literal",
            T_(
                "escaped, dollar-quoted and other special strings are not allowed; write "
                "values as plain 'single-quoted' text"
            ),
        )
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        return QueryRejected(
            "bad_literal",
            T_(
                "WHERE %(shown)s: typed values other than DATE '...' and TIMESTAMP '...' "
                "(without a time zone) are not allowed",
                shown=shown,
            ),
        )
    if isinstance(node, exp.Func):
        return function_refused(node)
    what = "string concatenation" if isinstance(node, exp.DPipe) else "an expression"
    return QueryRejected(
        "expression",
        T_(
            "WHERE %(shown)s: %(clause)s is %(what)s; compare columns with literal values only",
            shown=shown,
            clause=fragment(node),
            what=what,
        ),
    )


def time_value(text: str, column_type: ColumnType, typed: str | None, shown: str) -> str:
    """An ISO date or timestamp, normalized so equal instants compare (and cache) equal.

    A date may be written in the Solar Hijri calendar (``'1405-01-15'``,
    ``'۱۴۰۵/۰۱/۱۵ 10:00'``): a year 1300-1499 is Solar Hijri by the rule of
    :mod:`cleanroom.jalali` (no data of the room is dated 1300-1499 AD), so
    the calendars cannot be confused, and the date is converted exactly. A
    Solar Hijri day that does not exist (30 Esfand of a common year) is
    refused with that reason rather than moved.
    """
    wants_date = column_type == ColumnType.date or typed == "date"
    example = "'2025-01-31'" if wants_date else "'2025-01-31' or '2025-01-31 18:30:00'"
    found = _TIME_TEXT.match(fold_digits(text.strip()))
    if found is None or (wants_date and found.group("clock")):
        raise QueryRejected(
            "bad_date",
            T_(
                "%(shown)s: %(text)s is not a %(column_type)s; write it as %(example)s "
                "(or as a Solar Hijri date like '1404-11-11')",
                shown=shown,
                text=quoted(text[:40]),
                column_type=column_type,
                example=example,
            ),
        )
    year, month, day = (int(found.group(g)) for g in ("year", "month", "day"))
    solar = jalali.is_solar_hijri_year(year)
    try:
        on = jalali.to_gregorian(year, month, day) if solar else date(year, month, day)
        instant = datetime.fromisoformat(f"{on.isoformat()} {found.group('clock') or '00:00'}")
    except ValueError:
        calendar = T_("Solar Hijri date (a year 1300-1499)") if solar else T_("Gregorian date")
        raise QueryRejected(
            "bad_date",
            T_(
                "%(shown)s: %(text)s is read as a %(calendar)s, and that calendar has no "
                "such day or time",
                shown=shown,
                text=quoted(text[:40]),
                calendar=calendar,
            ),
        ) from None
    if column_type == ColumnType.date:
        return instant.date().isoformat()
    return instant.isoformat(sep=" ")


def function_refused(node: exp.Func) -> QueryRejected:
    """Any function but the released aggregates: its output sensitivity is unknown."""
    if isinstance(node, exp.Case | exp.If):
        return QueryRejected(
            "expression",
            T_(
                "%(clause)s: CASE is not allowed; filter in WHERE and group by dimensions",
                clause=fragment(node),
            ),
        )
    name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
    if isinstance(node, exp.Cast | exp.TryCast):
        name = "CAST"
    return QueryRejected(
        "unknown_function",
        T_(
            "%(clause)s: %(name)s is not allowed; the only functions are %(aggregates)s",
            clause=fragment(node),
            name=name.upper(),
            aggregates=AGGREGATES,
        ),
    )


# --- writing the canonical text ----------------------------------------------------


def canonical_sql(plan: QueryPlan, policy: CollaborationPolicy) -> str:
    """Normalized SQL of a plan: the same for trivially rewritten variants of one query.

    Built from the plan, not the analyst's text: tables by full name (aliases
    gone), keys, aggregates, conjuncts, disjuncts and IN lists sorted, literals
    normalized. It is valid restricted SQL, and checking it again gives it back
    (unless full table names push it over ``MAX_SQL_CHARS``).
    """
    by_alias = {t.alias: t for t in plan.tables}

    def name(ref: ColumnRef) -> str:
        return f"{by_alias[ref.table].name}.{ref.column}"

    def column_type(ref: ColumnRef) -> ColumnType | None:
        table = by_alias[ref.table]
        contract = policy.contract(table.party, table.dataset)
        column = contract.columns.get(ref.column) if contract else None
        return column.type if column else None

    tables = sorted(t.name for t in plan.tables)
    first = tables[0]
    keys = sorted(plan.group_by, key=lambda k: name(k.column))
    items = [f"{name(k.column)} AS {quote_column(k.output)}" for k in keys]
    aggregates = []
    for agg in plan.aggregates:
        if agg.kind == "count":
            text = "COUNT(*)"
        elif agg.kind == "count_persons":
            text = f"COUNT(DISTINCT {first}.{PERSON})"  # joined on person: any table's is it
        else:
            assert agg.column is not None
            text = f"{agg.kind.upper()}({name(agg.column)})"
        aggregates.append(f"{text} AS {quote_column(agg.output)}")
    # Never executed: the cache key's normalized text, built from the plan's vetted names
    # (unquoted, so the keys of answers already cached stay the same).
    sql = f"SELECT {', '.join([*items, *sorted(aggregates)])} FROM {first}"  # noqa: S608
    for table in tables[1:]:
        sql += f" JOIN {table} ON {first}.{PERSON} = {table}.{PERSON}"
    if plan.where is not None:
        sql += f" WHERE {_render_filter(plan.where, name, column_type)}"
    if keys:
        sql += f" GROUP BY {', '.join(name(k.column) for k in keys)}"
    return sql


def _render_filter(f: Filter, name: _Namer, column_type: _Typer) -> str:
    if isinstance(f, Comparison):
        return _render_comparison(f, name, column_type)
    if f.op == "not":
        return f"NOT ({_render_filter(f.items[0], name, column_type)})"
    parts = sorted(_parts(f, f.op, name, column_type))
    if len(parts) == 1:
        return parts[0][1:-1] if parts[0].startswith("(") else parts[0]
    return f" {f.op.upper()} ".join(parts)


def _parts(f: Filter, op: str, name: _Namer, column_type: _Typer) -> set[str]:
    """Operands of nested same-kind connectors, deduplicated; compound ones parenthesized."""
    if isinstance(f, BoolOp) and f.op == op:
        return {p for item in f.items for p in _parts(item, op, name, column_type)}
    text = _render_filter(f, name, column_type)
    compound = isinstance(f, BoolOp) and f.op != "not" and (" AND " in text or " OR " in text)
    return {f"({text})" if compound else text}


def _render_comparison(c: Comparison, name: _Namer, column_type: _Typer) -> str:
    column = name(c.column)
    kind = column_type(c.column)
    values = sorted({render_scalar(v, kind) for v in c.values})
    op: str = c.op
    if op in ("in", "not in") and len(values) == 1:
        op = "=" if op == "in" else "!="
    if op in ("in", "not in"):
        return f"{column} {op.upper()} ({', '.join(values)})"
    if op == "between":
        low, high = (render_scalar(v, kind) for v in c.values)
        return f"{column} BETWEEN {low} AND {high}"
    if op in ("is null", "is not null"):
        return f"{column} {op.upper()}"
    return f"{column} {op} {values[0]}"


def render_scalar(value: Scalar, column_type: ColumnType | None = None) -> str:
    """A value as SQL; time values as typed literals, so they compare as instants."""
    if column_type == ColumnType.date:
        return f"DATE {literal_sql(str(value))}"
    if column_type == ColumnType.timestamp:
        return f"TIMESTAMP {literal_sql(str(value))}"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return literal_sql(value)
