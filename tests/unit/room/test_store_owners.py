"""One owner per metadata table: only its repository module names the table in SQL.

Every string in the package that reads like SQL (``FROM t``, ``INTO t``,
``UPDATE t``, ``JOIN t``, ``TABLE t``, in any case; docstrings excluded) is found with the
Python parser and attributed to its module. A table named by any module other
than its owner fails the test with the places: move the statement into the
owner and call it from there. ``store.py`` holds the schema and its migrations,
so it names every table.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

import cleanroom
from cleanroom.room.store import MIGRATIONS

PACKAGE = Path(cleanroom.__file__).parent
SCHEMA = "cleanroom/room/store.py"

OWNERS = {
    "audit": "cleanroom/room/audit.py",
    "audit_head": "cleanroom/room/audit.py",
    "budget_charges": "cleanroom/room/budget.py",
    "datasets": "cleanroom/room/datasets.py",
    "matches": "cleanroom/room/generations.py",
    "policy_approvals": "cleanroom/room/policy/versions.py",
    "policy_versions": "cleanroom/room/policy/versions.py",
    "queries": "cleanroom/room/query/records.py",
    "report_runs": "cleanroom/room/reports/runs.py",
    "retired_match_keys": "cleanroom/room/match_keys.py",
    "suppressions": "cleanroom/room/suppression.py",
    "users": "cleanroom/room/auth.py",
    "web_sessions": "cleanroom/room/web/session.py",
}

_NAMED = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+([a-z_]+)\b", re.IGNORECASE)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal but docstrings; an f-string's text parts joined around its holes."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [p.value if isinstance(p, ast.Constant) else " ? " for p in node.values]
            found.append((node.lineno, "".join(str(p) for p in parts)))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            found.append((node.lineno, node.value))
    return found


@cache
def tables_in_sql() -> dict[str, dict[str, list[int]]]:
    """table -> module -> lines where a SQL string names it."""
    named: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE.parent).as_posix()
        for line, text in _strings(ast.parse(path.read_text(), str(path))):
            for table in _NAMED.findall(text):
                named[table][module].append(line)
    return named


def test_every_metadata_table_has_an_owner() -> None:
    created = set(re.findall(r"CREATE TABLE ([a-z_]+) \(", "\n".join(MIGRATIONS)))
    created = {t.removesuffix("_new") for t in created}
    assert created == set(OWNERS)


@pytest.mark.parametrize("table", sorted(OWNERS))
def test_only_the_owner_names_its_table_in_sql(table: str) -> None:
    named = tables_in_sql()
    others = {
        module: lines
        for module, lines in named.get(table, {}).items()
        if module not in (OWNERS[table], SCHEMA)
    }
    assert not others, f"{table} belongs to {OWNERS[table]}, but SQL names it in {others}"
    assert OWNERS[table] in named.get(table, {}), f"{OWNERS[table]} owns {table} but never uses it"


def test_the_scan_sees_sql_written_in_every_form() -> None:
    """The detector itself: plain, implicitly joined and f-strings count; docstrings do not."""
    source = (
        '"""Reads FROM queries, in prose."""\n'
        'a = "SELECT 1 FROM queries"\n'
        'b = ("UPDATE matches SET x = 1 " "WHERE y")\n'
        'c = f"INSERT INTO budget_charges ({cols}) VALUES (?)"\n'
        'd = f"SELECT {cols} FROM policy_versions WHERE version = ?"\n'
        'e = "delete from audit where seq = ?"\n'
    )
    found = {t for _, text in _strings(ast.parse(source)) for t in _NAMED.findall(text)}
    assert found == {"queries", "matches", "budget_charges", "policy_versions", "audit"}
    assert "SELECT 1 FROM queries" in dict(_strings(ast.parse(source))).values()
