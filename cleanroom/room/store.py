"""The metadata store: one SQLite file, every change in a transaction.

SQLite (WAL mode) is the room's transactional authority for everything that is
not party data: users, the audit chain, policy versions, which dataset version
is live, which bundles were consumed, match generations. It holds no token, no
identifier and no secret (user tokens are stored as SHA-256 hashes). The CLI and
the service may use it at the same time; writers serialize on ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cleanroom import clock
from cleanroom.errors import T_, InternalError, StoreBusyError

# Append-only: a released schema step is never edited, only followed by another.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE users (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        role        TEXT NOT NULL,
        party       TEXT,
        token_hash  BLOB NOT NULL UNIQUE,
        created_at  TEXT NOT NULL,
        revoked_at  TEXT
    );
    CREATE TABLE audit (
        seq        INTEGER PRIMARY KEY,
        at         TEXT NOT NULL,
        actor      TEXT NOT NULL,
        action     TEXT NOT NULL,
        target     TEXT,
        outcome    TEXT NOT NULL,
        details    TEXT NOT NULL,
        prev_hash  TEXT NOT NULL,
        hash       TEXT NOT NULL
    );
    CREATE TABLE audit_head (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        seq   INTEGER NOT NULL,
        hash  TEXT NOT NULL,
        mac   TEXT NOT NULL
    );
    CREATE TABLE policy_versions (
        version       INTEGER PRIMARY KEY,
        sha256        TEXT NOT NULL,
        body          TEXT NOT NULL,
        status        TEXT NOT NULL,
        author        TEXT NOT NULL,
        comment       TEXT,
        created_at    TEXT NOT NULL,
        activated_at  TEXT
    );
    CREATE TABLE datasets (
        party        TEXT NOT NULL,
        dataset      TEXT NOT NULL,
        version      INTEGER NOT NULL,
        bundle_id    TEXT NOT NULL UNIQUE,
        table_name   TEXT NOT NULL UNIQUE,
        rows         INTEGER NOT NULL,
        columns      TEXT NOT NULL,
        uploaded_by  TEXT NOT NULL,
        uploaded_at  TEXT NOT NULL,
        status       TEXT NOT NULL CHECK (status IN ('live', 'replaced')),
        PRIMARY KEY (party, dataset, version)
    );
    CREATE UNIQUE INDEX one_live_version ON datasets (party, dataset) WHERE status = 'live';
    CREATE TABLE matches (
        generation   INTEGER PRIMARY KEY,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        status       TEXT NOT NULL CHECK (status IN ('running', 'live', 'replaced', 'failed')),
        inputs       TEXT NOT NULL,
        tables       TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX one_live_match ON matches (status) WHERE status = 'live';
    """,
    """
    CREATE TABLE budget_charges (
        id           INTEGER PRIMARY KEY,
        party        TEXT NOT NULL,
        period       TEXT NOT NULL,
        epsilon_num  INTEGER NOT NULL,
        epsilon_den  INTEGER NOT NULL,
        delta        REAL NOT NULL DEFAULT 0,
        query_id     TEXT NOT NULL,
        charged_at   TEXT NOT NULL,
        refunded_at  TEXT
    );
    CREATE INDEX budget_by_period ON budget_charges (period, party);
    CREATE TABLE queries (
        id              TEXT PRIMARY KEY,
        party           TEXT,
        user_name       TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('sql', 'template')),
        request         TEXT NOT NULL,
        cache_key       TEXT NOT NULL,
        policy_version  INTEGER NOT NULL,
        generation      INTEGER NOT NULL,
        epsilon         TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'refused')),
        result          TEXT,
        result_sha256   TEXT,
        cached_from     TEXT,
        created_at      TEXT NOT NULL,
        finished_at     TEXT
    );
    CREATE INDEX queries_by_cache_key ON queries (cache_key, status);
    """,
    # Policy lifecycle: a proposal records the version it was made against and
    # the approval bar that version set; each reviewer decides once.
    """
    ALTER TABLE policy_versions ADD COLUMN base_version INTEGER;
    ALTER TABLE policy_versions ADD COLUMN approvals_required INTEGER;
    CREATE UNIQUE INDEX one_active_policy ON policy_versions (status) WHERE status = 'active';
    CREATE TABLE policy_approvals (
        version   INTEGER NOT NULL REFERENCES policy_versions (version),
        reviewer  TEXT NOT NULL,
        decision  TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
        comment   TEXT,
        at        TEXT NOT NULL,
        PRIMARY KEY (version, reviewer)
    );
    """,
    # Report runs (cleanroom.room.reports): one row per scheduled slot or manual run.
    # UNIQUE (report, slot) is what keeps two schedulers' ticks from running (and
    # charging) one slot twice; the partial index allows one running run per report.
    """
    CREATE TABLE report_runs (
        id              TEXT PRIMARY KEY,
        report          TEXT NOT NULL,
        slot            TEXT NOT NULL,
        trigger         TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual')),
        actor           TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('running', 'done', 'refused', 'failed')),
        policy_version  INTEGER NOT NULL,
        generation      INTEGER,
        epsilon         TEXT NOT NULL,
        charge_id       INTEGER,
        refunded        INTEGER NOT NULL DEFAULT 0,
        inputs          TEXT NOT NULL,
        outputs         TEXT,
        files           TEXT NOT NULL DEFAULT '[]',
        error           TEXT,
        started_at      TEXT NOT NULL,
        finished_at     TEXT,
        UNIQUE (report, slot)
    );
    CREATE INDEX report_runs_by_report ON report_runs (report, started_at);
    CREATE UNIQUE INDEX one_running_report ON report_runs (report) WHERE status = 'running';
    """,
    # Web UI sessions (cleanroom.room.web.session): only SHA-256 of the cookie's random
    # id is stored, like user tokens, so a copy of this file cannot sign anyone in.
    """
    CREATE TABLE web_sessions (
        id_hash     BLOB PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users (id),
        created_at  TEXT NOT NULL,
        seen_at     TEXT NOT NULL,
        expires_at  TEXT NOT NULL
    );
    CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
    """,
    # Where a match built its analysis tables: a generation matched on Spark exists
    # only as Parquet, so a room switched back to DuckDB must match again.
    """
    ALTER TABLE matches ADD COLUMN backend TEXT NOT NULL DEFAULT 'duckdb';
    """,
    # What the identity limits kept a match from merging (identity.Withheld, counts only).
    """
    ALTER TABLE matches ADD COLUMN withheld TEXT NOT NULL DEFAULT '{}';
    """,
    # Per dimension, how many uploaded rows hold a value outside the policy's domain
    # (JSON {column: rows}); shown like the row count (cleanroom.room.disclosure).
    """
    ALTER TABLE datasets ADD COLUMN out_of_domain TEXT NOT NULL DEFAULT '{}';
    """,
    # Each person's language for the web UI ('fa' | 'en'); NULL: the room's default.
    """
    ALTER TABLE users ADD COLUMN language TEXT;
    """,
    # Which token definition (cleanroom.contract.keyed_hash.TOKEN_VERSION) a dataset's tokens
    # follow: versions never join, so a match refuses to mix them.
    """
    ALTER TABLE datasets ADD COLUMN token_version INTEGER NOT NULL DEFAULT 1;
    """,
    # Retention (cleanroom.room.expiry): a dataset version or match generation past the
    # policy's retention is 'expired' (its data deleted, the row kept for the trail) at
    # ``expired_at``. SQLite cannot widen a CHECK, so both tables are rebuilt as they are.
    """
    CREATE TABLE datasets_new (
        party          TEXT NOT NULL,
        dataset        TEXT NOT NULL,
        version        INTEGER NOT NULL,
        bundle_id      TEXT NOT NULL UNIQUE,
        table_name     TEXT NOT NULL UNIQUE,
        rows           INTEGER NOT NULL,
        columns        TEXT NOT NULL,
        uploaded_by    TEXT NOT NULL,
        uploaded_at    TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('live', 'replaced', 'expired')),
        out_of_domain  TEXT NOT NULL DEFAULT '{}',
        token_version  INTEGER NOT NULL DEFAULT 1,
        expired_at     TEXT,
        PRIMARY KEY (party, dataset, version)
    );
    INSERT INTO datasets_new (party, dataset, version, bundle_id, table_name, rows, columns,
        uploaded_by, uploaded_at, status, out_of_domain, token_version)
        SELECT party, dataset, version, bundle_id, table_name, rows, columns, uploaded_by,
        uploaded_at, status, out_of_domain, token_version FROM datasets;
    DROP TABLE datasets;
    ALTER TABLE datasets_new RENAME TO datasets;
    CREATE UNIQUE INDEX one_live_version ON datasets (party, dataset) WHERE status = 'live';
    CREATE TABLE matches_new (
        generation   INTEGER PRIMARY KEY,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        status       TEXT NOT NULL
                     CHECK (status IN ('running', 'live', 'replaced', 'failed', 'expired')),
        inputs       TEXT NOT NULL,
        tables       TEXT NOT NULL DEFAULT '{}',
        backend      TEXT NOT NULL DEFAULT 'duckdb',
        withheld     TEXT NOT NULL DEFAULT '{}',
        expired_at   TEXT
    );
    INSERT INTO matches_new (generation, started_at, finished_at, status, inputs, tables,
        backend, withheld)
        SELECT generation, started_at, finished_at, status, inputs, tables, backend, withheld
        FROM matches;
    DROP TABLE matches;
    ALTER TABLE matches_new RENAME TO matches;
    CREATE UNIQUE INDEX one_live_match ON matches (status) WHERE status = 'live';
    """,
    # The per-person bounds a match chose from the data (cleanroom.room.bounds.ChosenBounds,
    # JSON); NULL: the generation uses the policy's fixed bounds.
    """
    ALTER TABLE matches ADD COLUMN bounds TEXT;
    """,
    # Opt-out and match-key rotation (cleanroom.room.suppression, cleanroom.room.match_keys):
    # the key id a version's tokens were made under (NULL: uploaded before rotation existed,
    # i.e. under the policy's key), each party's suppression lists (one live per party), the
    # keys retired once every party re-prepared, and what a match applied.
    """
    ALTER TABLE datasets ADD COLUMN match_key_id TEXT;
    CREATE TABLE suppressions (
        party         TEXT NOT NULL,
        version       INTEGER NOT NULL,
        bundle_id     TEXT NOT NULL UNIQUE,
        table_name    TEXT NOT NULL UNIQUE,
        match_key_id  TEXT NOT NULL,
        token_version INTEGER NOT NULL,
        uploaded_by   TEXT NOT NULL,
        uploaded_at   TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ('live', 'replaced', 'retired')),
        PRIMARY KEY (party, version)
    );
    CREATE UNIQUE INDEX one_live_suppression ON suppressions (party) WHERE status = 'live';
    CREATE TABLE retired_match_keys (
        key_id      TEXT PRIMARY KEY,
        retired_at  TEXT NOT NULL,
        retired_by  TEXT NOT NULL
    );
    ALTER TABLE matches ADD COLUMN suppression TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE matches ADD COLUMN match_key_id TEXT;
    """,
    # What a budget charge paid for, as real columns instead of ids spelled into
    # ``query_id`` (``report:<name>:<run id>``, ``match-bounds:<generation>``): a query,
    # a report run or a match generation, exactly one (CHECK). A report section's
    # ``queries`` row names its run too, where recovery once matched the audit's
    # ``paid_by`` text. The old strings are parsed here, once; no code reads them again.
    """
    CREATE TABLE budget_charges_new (
        id           INTEGER PRIMARY KEY,
        party        TEXT NOT NULL,
        period       TEXT NOT NULL,
        epsilon_num  INTEGER NOT NULL,
        epsilon_den  INTEGER NOT NULL,
        delta        REAL NOT NULL DEFAULT 0,
        query_id     TEXT,
        report_run   TEXT,
        generation   INTEGER,
        charged_at   TEXT NOT NULL,
        refunded_at  TEXT,
        CHECK ((query_id IS NOT NULL) + (report_run IS NOT NULL) + (generation IS NOT NULL) = 1)
    );
    INSERT INTO budget_charges_new (id, party, period, epsilon_num, epsilon_den, delta,
        query_id, report_run, generation, charged_at, refunded_at)
        SELECT c.id, c.party, c.period, c.epsilon_num, c.epsilon_den, c.delta,
        CASE WHEN c.query_id LIKE 'report:%' OR c.query_id LIKE 'match-bounds:%'
             THEN NULL ELSE c.query_id END,
        CASE WHEN c.query_id LIKE 'report:%' THEN coalesce(
             (SELECT r.id FROM report_runs r
              WHERE 'report:' || r.report || ':' || r.id = c.query_id),
             substr(c.query_id, 8)) END,
        CASE WHEN c.query_id LIKE 'match-bounds:%'
             THEN CAST(substr(c.query_id, 14) AS INTEGER) END,
        c.charged_at, c.refunded_at
        FROM budget_charges c;
    DROP TABLE budget_charges;
    ALTER TABLE budget_charges_new RENAME TO budget_charges;
    CREATE INDEX budget_by_period ON budget_charges (period, party);
    CREATE INDEX budget_by_query ON budget_charges (query_id) WHERE query_id IS NOT NULL;
    CREATE INDEX budget_by_report_run ON budget_charges (report_run) WHERE report_run IS NOT NULL;
    ALTER TABLE queries ADD COLUMN report_run TEXT;
    UPDATE queries SET report_run = paid.run
        FROM (SELECT json_extract(details, '$.query_id') AS query_id,
                     substr(json_extract(details, '$.paid_by'), 12,
                            instr(substr(json_extract(details, '$.paid_by'), 12), ' ') - 1) AS run
              FROM audit WHERE action = 'query.run'
              AND json_extract(details, '$.paid_by') LIKE 'report run % (charge %)') AS paid
        WHERE queries.id = paid.query_id;
    CREATE INDEX queries_by_report_run ON queries (report_run) WHERE report_run IS NOT NULL;
    """,
]


def now() -> str:
    """Timestamps are UTC ISO-8601 with seconds, everywhere in the store (the room's clock)."""
    return clock.stamp()


class MetaStore:
    """One SQLite database; a connection per thread; explicit transactions."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout  # seconds a writer waits for another's lock
        self._local = threading.local()
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            if current > len(MIGRATIONS):
                raise InternalError(
                    f"{self.path}: written by a newer cleanroom (schema {current}); upgrade first"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in _statements(MIGRATIONS[version - 1]):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?)", (version,))

    def connection(self) -> sqlite3.Connection:
        """Return the calling thread's connection (SQLite connections must not cross threads)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``: writers never interleave, a failure rolls back.

        A lock held by another process past ``busy_timeout`` is a
        :class:`~cleanroom.errors.StoreBusyError` (503: nothing was written). A
        failed ``COMMIT`` (a full disk) is rolled back too, so the thread's
        connection is never left inside a transaction.
        """
        db = self.connection()
        if db.in_transaction:
            raise InternalError("nested metadata transaction")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            if is_locked(err):
                raise StoreBusyError(
                    T_(
                        "the metadata store stayed locked by another process for "
                        "%(busy_timeout)s s; nothing was changed, retry shortly",
                        busy_timeout=format(self.busy_timeout, "g"),
                    )
                ) from None
            raise
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def is_locked(err: sqlite3.Error) -> bool:
    """SQLite's "database is locked" / "busy": another connection holds the write lock."""
    code = getattr(err, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
