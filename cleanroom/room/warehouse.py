"""The analytic store: one DuckDB database file, encrypted at rest.

DuckDB encrypts database files (and, with ``temp_file_encryption``, its spill
files) with AES-GCM, but writes them only with the crypto of its ``httpfs``
extension, which DuckDB cannot download on our machines. We load the signed
extension binary that the ``duckdb-extension-httpfs`` wheel ships, matching the
pinned DuckDB version. We never set ``force_mbedtls_unsafe``.

The key is derived from the room secret with HKDF, so the database is unreadable
without the room's key files. One process owns the database; threads use
cursors of one connection.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cleanroom.errors import InternalError
from cleanroom.sql import SCHEMA, table_sql

# The type of a stored token column. Room tokens are HMAC outputs: random bytes that
# no codec shrinks, yet DuckDB tries FSST and dictionary compression on every
# BLOB it writes. Measured inserting 20M rows of two token columns into the
# encrypted file: 18.5 s with the analysis, 6.8 s without, for a file 7% larger.
# Reading them back skips the decompression too.
UNCOMPRESSED_BLOB = "BLOB USING COMPRESSION uncompressed"


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A separate 256-bit key per purpose, so no key does two jobs."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"cleanroom {purpose} v1".encode()
    ).derive(secret)


def httpfs_extension() -> Path:
    """The httpfs binary shipped by the pip package for this exact DuckDB version."""
    import duckdb_extension_httpfs

    root = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    wanted = root / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not wanted.exists():
        found = sorted(p.parent.name for p in root.glob("*/httpfs.duckdb_extension"))
        raise InternalError(
            f"duckdb-extension-httpfs ships {found}, not v{duckdb.__version__}; "
            "reinstall the project so both pins match"
        )
    return wanted


class Warehouse:
    """The encrypted database, attached as schema ``wh`` of an in-memory DuckDB."""

    def __init__(
        self, path: Path, secret: bytes, *, temp_dir: Path, threads: int, memory_limit: str
    ) -> None:
        self.path = path
        temp_dir.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(
            config={
                "threads": threads,
                "memory_limit": memory_limit,
                "temp_directory": str(temp_dir),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "preserve_insertion_order": False,
            }
        )
        self.con.execute(f"LOAD '{httpfs_extension()}'")
        self.con.execute("SET temp_file_encryption = true")
        self.con.execute("SET enable_progress_bar = false")
        key = derive_key(secret, "warehouse").hex()
        self.con.execute(f"ATTACH '{path}' AS {SCHEMA} (ENCRYPTION_KEY '{key}')")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection for the calling thread, sharing the database."""
        return self.con.cursor()

    def tables(self) -> set[str]:
        """Every table in the warehouse."""
        rows = self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [SCHEMA]
        ).fetchall()
        return {r[0] for r in rows}

    def drop(self, name: str) -> None:
        """Drop a table if it exists (one a reader may hold: ``Room.drop_when_unread``)."""
        self.cursor().execute(f"DROP TABLE IF EXISTS {table_sql(name)}")

    def checkpoint(self) -> None:
        """Flush the WAL into the encrypted file, once the queries in flight have finished.

        ``FORCE``: a plain CHECKPOINT refuses while any other transaction is
        open after a catalog change (an ingest or a match under query load);
        in DuckDB 1.5 the forced one waits for them instead (none is aborted).
        """
        self.con.execute(f"FORCE CHECKPOINT {SCHEMA}")

    def close(self) -> None:
        """Checkpoint and close."""
        self.con.close()
