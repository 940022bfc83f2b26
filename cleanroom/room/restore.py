"""Restoring a room from a backup archive, verified before it may serve.

``cleanroom room restore`` rebuilds the room in a directory of its own next to
the target (``.<name>.restoring``) and renames it into place only once

1. the archive decrypted and authenticated to its last chunk (both keys: the
   operator's backup private key and the room's own key files, from where the
   operator keeps them apart from the archives);
2. every table the snapshot named is back with the rows the manifest counted;
3. the metadata store opened with this release, so an archive of an older
   release's schema is migrated forward here;
4. the audit chain verifies (a break a re-anchor acknowledged is fine; an open
   one is refused) and the budget ledger agrees with the stored answers
   (``recovery.check_ledger``; a query in flight at backup time is failed and
   refunded by the service's start-up recovery, as after any stop).

Any failure removes the half-built directory and names the reason; the target
is never touched.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cleanroom.contract.keys import (
    load_backup_private_key,
    load_room_private_key,
    load_symmetric_key,
    passphrase_from_env,
    public_key_id,
)
from cleanroom.errors import T_, UserError
from cleanroom.room.backup import (
    FILE,
    MANIFEST,
    TABLE,
    ArchiveError,
    RestoreRefused,
    open_archive,
    read_ipc,
)
from cleanroom.room.config import load_settings
from cleanroom.room.files import make_tree_private, private_umask
from cleanroom.room.warehouse import UNCOMPRESSED_BLOB, Warehouse
from cleanroom.sql import quote_column, table_sql

KEY_FILES = ("room.key", "room.pub", "room.secret")
_PREFIXES = ("reports/", "spark/")
_SCALAR_TYPE = re.compile(r"[A-Z][A-Z ]*[A-Z](\(\d+(,\d+)?\))?")  # BIGINT, DECIMAL(18,3), ...


@dataclass(frozen=True)
class Restored:
    """What a restore brought back (counts of the room's own tables, for the operator)."""

    room: Path
    created_at: str
    schema: int
    tables: int
    rows: int
    files: int
    audit_entries: int
    generation: int | None


def _safe_name(name: str) -> str:
    parts = Path(name).parts
    if (
        (name not in ("meta.sqlite", "room.yaml") and not name.startswith(_PREFIXES))
        or Path(name).is_absolute()
        or ".." in parts
    ):
        raise ArchiveError(T_("archive names an unexpected file %(name)s", name=repr(name[:80])))
    return name


def restore(
    archive: Path, into: Path, *, keys: Path, backup_key: Path, threads: int = 2
) -> Restored:
    """Rebuild the room in ``into`` from ``archive``; refuse (creating nothing) if unfit."""
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise UserError(
            T_("%(into)s: exists and is not empty; restore into a new directory", into=into)
        )
    passphrase = passphrase_from_env()
    room_key = load_room_private_key(keys / "room.key", passphrase)
    secret = load_symmetric_key(keys / "room.secret", "room-secret", passphrase=passphrase)
    private = load_backup_private_key(backup_key, passphrase)
    private_umask()
    staging = into.parent / f".{into.name}.restoring"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "keys").mkdir(parents=True)
    try:
        for name in KEY_FILES:
            shutil.copyfile(keys / name, staging / "keys" / name)
        (staging / "uploads").mkdir()
        with archive.open("rb") as fh:
            opened = open_archive(fh, private, secret.secret, public_key_id(room_key.public_key()))
            manifest, rows = _unpack(opened.frames, staging, secret.secret, threads)
        restored = _verify(staging, into, opened.header, manifest, rows)
        make_tree_private(staging)
        if into.exists():
            into.rmdir()
        staging.rename(into)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return restored


def _unpack(
    frames: Iterator[tuple[int, str, bytes]], staging: Path, secret: bytes, threads: int
) -> tuple[dict[str, object], dict[str, int]]:
    warehouse = Warehouse(
        staging / "warehouse.duckdb",
        secret,
        temp_dir=staging / "tmp",
        threads=threads,
        memory_limit="2GB",
    )
    manifest: dict[str, object] | None = None
    rows: dict[str, int] = {}
    current: tuple[str, IO[bytes]] | None = None
    cursor = warehouse.cursor()
    try:
        for kind, named, data in frames:
            name = _safe_name(named) if kind == FILE else named
            if kind == FILE:
                if current is None or current[0] != name:
                    if current is not None:
                        raise ArchiveError(
                            T_("archive file %(name)s is not closed", name=repr(current[0]))
                        )
                    path = staging / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    current = (name, path.open("xb"))
                if data:
                    current[1].write(data)
                else:
                    current[1].close()
                    current = None
            elif kind == TABLE:
                table = read_ipc(data)
                target = table_sql(name)
                cursor.register("incoming", table)
                if name not in rows:
                    described = cursor.execute("DESCRIBE SELECT * FROM incoming").fetchall()
                    cursor.execute(f"CREATE TABLE {target} ({_columns(described)})")
                    rows[name] = 0
                cursor.execute(f"INSERT INTO {target} SELECT * FROM incoming")  # noqa: S608
                cursor.unregister("incoming")
                rows[name] += table.num_rows
            elif kind == MANIFEST:
                manifest = json.loads(data)
            else:
                raise ArchiveError(T_("archive has a frame of unknown kind %(kind)s", kind=kind))
        if current is not None:
            raise ArchiveError(T_("archive file %(name)s is not closed", name=repr(current[0])))
        warehouse.checkpoint()
    finally:
        if current is not None:
            current[1].close()
        cursor.close()
        warehouse.close()
    if manifest is None:
        raise ArchiveError(T_("archive has no manifest"))
    return manifest, rows


def _columns(described: list[tuple[Any, ...]]) -> str:
    """An archived table's columns, its byte strings stored as ingest stores tokens.

    The only BLOB columns a room keeps are token columns (analysis tables
    refuse them), so each one is ``UNCOMPRESSED_BLOB``, as when it was loaded.
    The types are DuckDB's reading of the archive's Arrow schema and become SQL
    text, so only plain scalar type names are taken (a room's tables hold no
    other); names pass the room's own check.
    """
    columns = []
    for name, kind, *_ in described:
        if not _SCALAR_TYPE.fullmatch(str(kind)):
            raise ArchiveError(
                T_("archive table column %(name)s has an unexpected type", name=repr(name))
            )
        columns.append(f"{quote_column(str(name))} {UNCOMPRESSED_BLOB if kind == 'BLOB' else kind}")
    return ", ".join(columns)


def _verify(
    staging: Path,
    into: Path,
    header: dict[str, object],
    manifest: dict[str, object],
    rows: dict[str, int],
) -> Restored:
    from cleanroom.room.recovery import check_ledger
    from cleanroom.room.state import Room

    counted = manifest.get("tables")
    if counted != rows:
        raise RestoreRefused(
            T_(
                "the tables restored differ from the archive's manifest "
                "(%(restored)s restored, %(listed)s listed)",
                restored=len(rows),
                listed=len(counted) if isinstance(counted, dict) else 0,
            )
        )
    files: list[Any] = list(manifest.get("files") or [])  # type: ignore[call-overload]
    missing = [f for f in files if not (staging / str(f)).is_file()]
    if missing:
        raise RestoreRefused(
            T_("%(missing)s file(s) of the manifest are missing", missing=len(missing))
        )
    room = Room(load_settings(staging))  # opens, and migrates an older schema forward
    try:
        chain = room.audit.verify()
        if not chain.recording:
            raise RestoreRefused(
                T_(
                    "the audit chain does not verify: broken at entry %(entry)s (%(problem)s)",
                    entry=chain.broken_at,
                    problem=chain.open_problems[0],
                )
            )
        ledger = check_ledger(room, idle=False)
        if not ledger.ok:
            if len(ledger.problems) > 1:
                raise RestoreRefused(
                    T_(
                        "the budget ledger does not agree with the stored answers: "
                        "%(problem)s (and %(more)s more)",
                        problem=ledger.problems[0],
                        more=len(ledger.problems) - 1,
                    )
                )
            raise RestoreRefused(
                T_(
                    "the budget ledger does not agree with the stored answers: %(problem)s",
                    problem=ledger.problems[0],
                )
            )
        entries = chain.entries
    finally:
        room.close()
    generation = manifest.get("generation")
    return Restored(
        room=into,
        created_at=str(header.get("created_at")),
        schema=int(str(header.get("schema"))),
        tables=len(rows),
        rows=sum(rows.values()),
        files=len(files),
        audit_entries=entries,
        generation=int(generation) if isinstance(generation, int) else None,
    )
