"""The one owner of SQL quoting: identifiers, the room's tables, and typed literals.

Every name or value that reaches an SQL statement passes through here, so
there is one rule to review. It sits beside the other modules both sides
share, not in the room: the party's ``prepare`` quotes its spec's columns
with it too (and imports nothing of the room by doing so). Two forms of each:

* **trees** — :func:`identifier`, :func:`column`, :func:`table`,
  :func:`literal` return ``sqlglot.exp`` nodes. The query compiler builds a
  whole statement from them, and each backend writes the one tree in its
  own dialect (``tree.sql(dialect=...)``): sqlglot escapes a string literal
  the way each dialect reads it (DuckDB doubles a quote, Spark also escapes a
  backslash), which no hand-written text can do for both at once;
* **text** — :func:`quote_column`, :func:`quote_table`, :func:`table_sql`,
  :func:`literal_sql`, :func:`name_sql` render those same nodes as DuckDB
  text (SQLite reads it too), for SQL written as SQL: the analyses' and
  identity resolution's, which :func:`statement` then parses into a tree
  before any backend sees it, and the warehouse's own statements (ingest,
  backups, the prepared sequence) and the metadata store's, which their
  engines run as written. Such an f-string carries ``# noqa: S608``: ruff's
  check stays on everywhere else. Only the room's own names go into such
  text; a value is a ``$name`` marker, a bound parameter or a literal node,
  never spliced.

An identifier is refused, not escaped, when it is anything but a letter or
``_`` followed by letters, digits and ``_`` (Unicode letters allowed: an
analyst may name an output in Persian): every name here is one the room or
its policy chose, so an odd one is a bug to stop, not a string to make safe.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from cleanroom.errors import InternalError

SCHEMA = "wh"  # the warehouse, attached under this name (``cleanroom.room.warehouse``)
_DIALECT = "duckdb"  # the text form's dialect: the warehouse's
_NAME = re.compile(r"[^\W\d]\w{0,254}")  # a letter (any script) or '_', then digits too
_TABLE = re.compile(r"[a-z_][a-z0-9_]{0,120}")  # a warehouse table the room named


def identifier(name: str) -> exp.Identifier:
    """A quoted identifier node; anything but letters, digits and ``_`` is refused."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InternalError(f"refusing unsafe SQL identifier {name!r}")
    return exp.to_identifier(name, quoted=True)


def column(name: str, table: str | None = None) -> exp.Column:
    """``"table"."name"`` (or ``"name"``) as a column node, both parts checked."""
    return exp.Column(this=identifier(name), table=identifier(table) if table else None)


def table(name: str) -> exp.Table:
    """The warehouse table ``wh."name"`` as a node; ``name`` must be one the room made."""
    if not isinstance(name, str) or not _TABLE.fullmatch(name):
        raise InternalError(f"refusing unsafe table name {name!r}")
    return exp.Table(this=exp.to_identifier(name, quoted=True), db=exp.to_identifier(SCHEMA))


def qualified(name: str) -> exp.Table:
    """A table named ``[catalog.][schema.]table`` (scratch and TEMP tables too), parts checked."""
    parts = name.split(".") if isinstance(name, str) else []
    if not 1 <= len(parts) <= 3:
        raise InternalError(f"refusing unsafe table name {name!r}")
    quoted = [identifier(part) for part in parts]
    catalog, db, this = [None] * (3 - len(quoted)) + quoted
    return exp.Table(this=this, db=db, catalog=catalog)


def _number(value: int | float) -> exp.Expr:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InternalError("a non-finite number cannot be an SQL literal")
        return exp.cast(exp.Literal.string(repr(value)), exp.DataType.build("DOUBLE"))
    node: exp.Expr = exp.Literal.number(abs(value))
    return exp.paren(exp.Neg(this=node), copy=False) if value < 0 else node


def _moment(value: dt.date) -> exp.Expr:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return exp.cast(
            exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.build("TIMESTAMP")
        )
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))


def literal(value: object) -> exp.Expr:
    """A value as a typed literal node: a float is a DOUBLE, a date a DATE, a list an ARRAY.

    The value is data inside the node, never SQL text: whatever a string
    holds, it stays one string literal in every dialect.
    """
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.true() if value else exp.false()
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.date):
        return _moment(value)
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[literal(v) for v in value])
    raise InternalError(f"no SQL literal for a value of type {type(value).__name__}")


def bigint(value: int) -> exp.Expr:
    """An integer typed as BIGINT in every dialect (a hash salt hashes as one type)."""
    return exp.cast(literal(int(value)), exp.DataType.build("BIGINT"))


def quote_column(name: str) -> str:
    """A checked, quoted identifier as DuckDB text (``"name"``)."""
    return identifier(name).sql(dialect=_DIALECT)


def quote_table(name: str) -> str:
    """A checked ``[catalog.][schema.]table`` as DuckDB text, every part quoted."""
    return qualified(name).sql(dialect=_DIALECT)


def table_sql(name: str) -> str:
    """The warehouse table ``wh."name"`` as DuckDB text (see :func:`table`)."""
    return table(name).sql(dialect=_DIALECT)


def name_sql(name: str) -> str:
    """A name the room chose (a party, an identifier type) as a string literal, or ``''``.

    Refused like an identifier when odd: such a name comes from the policy,
    so an odd one is a bug to stop before any work.
    """
    if name:
        identifier(name)
    return literal_sql(name)


def literal_sql(value: object) -> str:
    """A typed literal as DuckDB text (see :func:`literal`), for the room's own values."""
    return literal(value).sql(dialect=_DIALECT)


def statement(text: str, /, **values: object) -> exp.Query:
    """The room's DuckDB text as a query tree, each ``$name`` marker bound to a typed literal.

    How the analyses and identity resolution make their statements: the SQL
    stays readable as SQL, holds only the room's own names (quoted here) and
    ``$name`` markers, and is parsed where the statement is made. Each value
    then enters the tree as a :func:`literal` node, by name (no positional
    order to keep; a value already a node, e.g. :func:`bigint`, goes in as
    is), and every backend writes the one tree in its dialect: the
    Spark path parses and tokenizes nothing. A marker without a value, a value
    without a marker, or a positional ``?`` is a bug, refused.
    """
    try:
        tree = sqlglot.parse_one(text, read=_DIALECT)
    except SqlglotError as err:
        raise InternalError(f"the room's statement does not parse: {err}") from None
    if not isinstance(tree, exp.Query):
        raise InternalError("the room's statement is not a query")
    marks = list(tree.find_all(exp.Placeholder))
    named = {mark.name for mark in marks}
    if named != values.keys():
        missing, unused = sorted(named - values.keys()), sorted(values.keys() - named)
        raise InternalError(f"statement markers {missing} have no value; values {unused} no marker")
    for mark in marks:
        value = values[mark.name]
        mark.replace(value.copy() if isinstance(value, exp.Expr) else literal(value))
    return tree
