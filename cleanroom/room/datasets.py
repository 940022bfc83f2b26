"""The ``datasets`` table's one owner: every uploaded version of every party's dataset.

A version's row says where its rows are (a warehouse table), which bundle
brought it (so a replay is refused), which match key its tokens were made
under and whether it is live, replaced or expired. Ingest publishes versions,
matching reads the live ones, retention expires them, key rotation and backup
read their tables — all through these functions, on :class:`DatasetVersion`
rows. Functions take the connection (or open transaction) to act in: a version
goes live in the same transaction as its audit entry.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from cleanroom.room.store import now


@dataclass(frozen=True)
class DatasetVersion:
    """One uploaded version of a party's dataset (metadata only)."""

    party: str
    dataset: str
    version: int
    bundle_id: str
    rows: int
    columns: dict[str, str]
    uploaded_by: str
    uploaded_at: str
    status: str
    table_name: str
    out_of_domain: dict[str, int]  # per dimension: rows whose value is not in the domain
    token_version: int
    match_key_id: str | None  # None: uploaded before rotations were recorded (the policy's key)
    expired_at: str | None = None  # when the retention deleted its rows

    @property
    def label(self) -> str:
        """``party.dataset vN``, as the trail and the retention's reasons name a version."""
        return f"{self.party}.{self.dataset} v{self.version}"

    @classmethod
    def from_row(cls, row: Any) -> DatasetVersion:
        """From a ``datasets`` row."""
        return cls(
            party=row["party"],
            dataset=row["dataset"],
            version=row["version"],
            bundle_id=row["bundle_id"],
            rows=row["rows"],
            columns=json.loads(row["columns"]),
            uploaded_by=row["uploaded_by"],
            uploaded_at=row["uploaded_at"],
            status=row["status"],
            table_name=row["table_name"],
            out_of_domain=json.loads(row["out_of_domain"]),
            token_version=row["token_version"],
            match_key_id=row["match_key_id"],
            expired_at=row["expired_at"],
        )

    def public(self) -> dict[str, Any]:
        """What the API shows (to whom, :mod:`cleanroom.room.disclosure` decides).

        No internal table names. ``out_of_domain`` holds exact counts of the
        party's own data: the disclosure rules show it, like the row count,
        only to the party itself and to the room's overseers.
        """
        return {
            "party": self.party,
            "dataset": self.dataset,
            "version": self.version,
            "bundle_id": self.bundle_id,
            "rows": self.rows,
            "columns": self.columns,
            "uploaded_by": self.uploaded_by,
            "uploaded_at": self.uploaded_at,
            "status": self.status,
            "out_of_domain": self.out_of_domain,
        }


# -- reading --------------------------------------------------------------------


def live(db: sqlite3.Connection) -> list[DatasetVersion]:
    """Every dataset's live version, by party and dataset."""
    rows = db.execute("SELECT * FROM datasets WHERE status = 'live' ORDER BY party, dataset")
    return [DatasetVersion.from_row(r) for r in rows]


def history(db: sqlite3.Connection, party: str, dataset: str) -> list[DatasetVersion]:
    """All versions of one dataset, newest first."""
    rows = db.execute(
        "SELECT * FROM datasets WHERE party = ? AND dataset = ? ORDER BY version DESC",
        (party, dataset),
    )
    return [DatasetVersion.from_row(r) for r in rows]


def get(db: sqlite3.Connection, party: str, dataset: str, version: int) -> DatasetVersion | None:
    """One version."""
    row = db.execute(
        "SELECT * FROM datasets WHERE party = ? AND dataset = ? AND version = ?",
        (party, dataset, version),
    ).fetchone()
    return None if row is None else DatasetVersion.from_row(row)


def by_bundle(db: sqlite3.Connection, bundle_id: str) -> DatasetVersion | None:
    """The version a bundle id already brought (a second upload of it is a replay)."""
    row = db.execute("SELECT * FROM datasets WHERE bundle_id = ?", (bundle_id,)).fetchone()
    return None if row is None else DatasetVersion.from_row(row)


def latest_version(db: sqlite3.Connection, party: str, dataset: str) -> int:
    """The highest version number stored for a dataset (0: none yet)."""
    row = db.execute(
        "SELECT coalesce(max(version), 0) FROM datasets WHERE party = ? AND dataset = ?",
        (party, dataset),
    ).fetchone()
    return int(row[0])


def with_status(db: sqlite3.Connection, *statuses: str) -> list[DatasetVersion]:
    """Every version in one of ``statuses``, by party, dataset and version."""
    marks = ", ".join("?" for _ in statuses)
    rows = db.execute(
        f"SELECT * FROM datasets WHERE status IN ({marks}) ORDER BY party, dataset, version",  # noqa: S608
        statuses,
    )
    return [DatasetVersion.from_row(r) for r in rows]


def every(db: sqlite3.Connection) -> list[DatasetVersion]:
    """Every version ever uploaded (for key rotation: which keys were ever used)."""
    rows = db.execute("SELECT * FROM datasets ORDER BY party, dataset, version")
    return [DatasetVersion.from_row(r) for r in rows]


# -- changing -------------------------------------------------------------------


def publish(
    db: sqlite3.Connection,
    *,
    party: str,
    dataset: str,
    version: int,
    bundle_id: str,
    table_name: str,
    rows: int,
    columns: dict[str, str],
    uploaded_by: str,
    out_of_domain: dict[str, int],
    token_version: int,
    match_key_id: str | None,
) -> str | None:
    """Make a new version live, replacing the live one; the replaced version's table."""
    old = db.execute(
        "SELECT table_name FROM datasets WHERE party = ? AND dataset = ? AND status = 'live'",
        (party, dataset),
    ).fetchone()
    db.execute(
        "UPDATE datasets SET status = 'replaced' WHERE party = ? AND dataset = ? "
        "AND status = 'live'",
        (party, dataset),
    )
    db.execute(
        "INSERT INTO datasets (party, dataset, version, bundle_id, table_name, rows,"
        " columns, uploaded_by, uploaded_at, status, out_of_domain, token_version,"
        " match_key_id) VALUES (?,?,?,?,?,?,?,?,?,'live',?,?,?)",
        (
            party,
            dataset,
            version,
            bundle_id,
            table_name,
            rows,
            json.dumps(columns),
            uploaded_by,
            now(),
            json.dumps(out_of_domain, sort_keys=True),
            token_version,
            match_key_id,
        ),
    )
    return None if old is None else str(old["table_name"])


def expire(db: sqlite3.Connection, version: DatasetVersion, at: str) -> None:
    """Past its retention: the row stays for the trail, its table goes."""
    db.execute(
        "UPDATE datasets SET status = 'expired', expired_at = ? "
        "WHERE party = ? AND dataset = ? AND version = ?",
        (at, version.party, version.dataset, version.version),
    )
