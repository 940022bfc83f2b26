"""Opt-out across brands: each party's list of customers who objected, applied at every match.

A party uploads a *suppression bundle* (``cleanroom prepare --kind
suppression``): tokens of its customers who objected, sealed and signed like
data. The room re-keys them like any token and keeps them in a table of one
column (``token``), never in an analysis table. A party has at most one live
list: a new one replaces the previous (a customer who withdraws the
objection is simply left out of the next list; an empty list withdraws all).

From the next match on, every person holding a listed token — through
identity resolution, so at every brand — is left out of every analysis
table, and so is any row that holds a listed token itself (a row whose link
the identity limits withheld still carries the customer's identifier). A
generation records *which* list versions it applied, never how many persons
or rows they removed; results and reports say that suppression applied.

What the room never shows: the tokens, how many a list holds, how many
persons or rows it removed, or which party's list removed whom. Uploads are
audited (``suppression.upload``) with the version and bundle id, and each
match's audit entry names the list versions it applied.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from cleanroom.room.backends import Tables
from cleanroom.room.store import now
from cleanroom.sql import quote_column, quote_table, statement

KIND = "suppression"  # the bundle header's ``kind`` (datasets carry "dataset" or none)
DATASET = "suppression"  # the header's dataset name for a suppression bundle


@dataclass(frozen=True)
class SuppressionList:
    """One uploaded version of a party's suppression list (metadata only, no count)."""

    party: str
    version: int
    bundle_id: str
    table_name: str
    match_key_id: str
    token_version: int
    uploaded_by: str
    uploaded_at: str
    status: str

    @classmethod
    def from_row(cls, row: Any) -> SuppressionList:
        """From a ``suppressions`` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def public(self) -> dict[str, Any]:
        """What its own party's uploader is told: that it is live; never how many it holds."""
        return {
            "kind": KIND,
            "party": self.party,
            "dataset": DATASET,
            "version": self.version,
            "bundle_id": self.bundle_id,
            "columns": {},
            "uploaded_by": self.uploaded_by,
            "uploaded_at": self.uploaded_at,
            "status": self.status,
        }


# -- the ``suppressions`` table (this module is its one owner) -------------------


def live_lists(db: sqlite3.Connection) -> list[SuppressionList]:
    """Every party's live suppression list."""
    rows = db.execute("SELECT * FROM suppressions WHERE status = 'live' ORDER BY party")
    return [SuppressionList.from_row(r) for r in rows]


def every(db: sqlite3.Connection) -> list[SuppressionList]:
    """Every list version ever uploaded (for key rotation: which keys were ever used)."""
    rows = db.execute("SELECT * FROM suppressions ORDER BY party, version")
    return [SuppressionList.from_row(r) for r in rows]


def get(db: sqlite3.Connection, party: str, version: int) -> SuppressionList | None:
    """One version of a party's list."""
    row = db.execute(
        "SELECT * FROM suppressions WHERE party = ? AND version = ?", (party, version)
    ).fetchone()
    return None if row is None else SuppressionList.from_row(row)


def by_bundle(db: sqlite3.Connection, bundle_id: str) -> SuppressionList | None:
    """The list version a bundle id already brought (a second upload of it is a replay)."""
    row = db.execute("SELECT * FROM suppressions WHERE bundle_id = ?", (bundle_id,)).fetchone()
    return None if row is None else SuppressionList.from_row(row)


def latest_version(db: sqlite3.Connection, party: str) -> int:
    """The highest list version stored for a party (0: none yet)."""
    row = db.execute(
        "SELECT coalesce(max(version), 0) FROM suppressions WHERE party = ?", (party,)
    ).fetchone()
    return int(row[0])


def publish(
    db: sqlite3.Connection,
    *,
    party: str,
    version: int,
    bundle_id: str,
    table_name: str,
    match_key_id: str,
    token_version: int,
    uploaded_by: str,
) -> str | None:
    """Make a party's new list live, replacing its live one; the replaced list's table."""
    old = db.execute(
        "SELECT table_name FROM suppressions WHERE party = ? AND status = 'live'", (party,)
    ).fetchone()
    db.execute(
        "UPDATE suppressions SET status = 'replaced' WHERE party = ? AND status = 'live'",
        (party,),
    )
    db.execute(
        "INSERT INTO suppressions (party, version, bundle_id, table_name, "
        "match_key_id, token_version, uploaded_by, uploaded_at, status) "
        "VALUES (?,?,?,?,?,?,?,?,'live')",
        (party, version, bundle_id, table_name, match_key_id, token_version, uploaded_by, now()),
    )
    return None if old is None else str(old["table_name"])


def retire_key(db: sqlite3.Connection, key_id: str) -> None:
    """Mark every list made under a retired match key ``retired``."""
    db.execute("UPDATE suppressions SET status = 'retired' WHERE match_key_id = ?", (key_id,))


def suppressed_tokens(engine: Tables, tables: list[str], person_map: str, out: str) -> None:
    """Create ``out`` (token, person): every listed token once, with its person if matched.

    ``tables`` are the lists' warehouse tables (one ``token`` column each);
    ``person`` is NULL for a token no dataset holds (it suppresses no one).
    """
    mapping = quote_table(person_map)
    union = " UNION ".join(f"SELECT token FROM {quote_table(t)}" for t in tables)  # noqa: S608
    engine.materialize(
        out,
        statement(
            f"SELECT x.token, m.person FROM ({union}) x LEFT JOIN {mapping} m ON m.token = x.token"  # noqa: S608
        ),
    )


def exclusion_sql(suppressed: str, row: str, person: str, token_columns: list[str]) -> str:
    """Joins and a WHERE condition keeping only rows no listed token touches.

    ``row`` is the source table's alias, ``person`` the person column's
    qualified name. A row goes when its person holds a listed token, or when
    one of its own token columns is a listed token.
    """
    table = quote_table(suppressed)
    joins = [
        f"LEFT JOIN (SELECT DISTINCT person FROM {table} WHERE person IS NOT NULL) sp "  # noqa: S608
        f"ON sp.person = {person}"
    ]
    conditions = ["sp.person IS NULL"]
    for i, column in enumerate(token_columns):
        joins.append(f"LEFT JOIN {table} st{i} ON st{i}.token = {row}.{quote_column(column)}")
        conditions.append(f"st{i}.token IS NULL")
    return " ".join(joins) + " WHERE " + " AND ".join(conditions)
