"""Backups: a consistent, encrypted archive of a room written while it serves.

What goes in: the metadata store (users, policies, the audit chain, the budget
ledger, queries and their cached answers — SQLite's online backup, one
consistent snapshot), the tables that snapshot says are live (each dataset's
live version and the live generation's analysis tables, read from the
warehouse as Arrow; on Spark the generation's encrypted Parquet as it is),
the published reports and ``room.yaml``. What stays out: the room's keys.

Consistent while serving: the snapshot of the metadata store and the pins on
the tables it names are taken under the lock that every drop of a live table
takes (the room's ``pins.lock``, ``cleanroom.room.inflight``), so an upload,
a match or an expiry committing meanwhile defers its drop until the archive is
written. A table is never changed once written, so reading each as it is gives
exactly the snapshot's data.

Encrypted twice over with keys kept apart: a random archive key is sealed with
HPKE to the operator's backup public key (setting ``backup_key``; the private
key never is on the room), and the AES-256-GCM key is derived from it *and* the
room's secret, so restoring needs the backup private key and the room's key
files, both kept away from the archives. The payload is AES-256-GCM in 4 MiB
chunks, each authenticated with its index and a last-chunk flag (the STREAM
construction, as bundles), so truncation, reordering or any edit fails.

Format: ``MAGIC ‖ u32 len ‖ header JSON ‖ (u32 len ‖ chunk)*``; the plaintext is
a sequence of frames ``u8 kind ‖ u16 name length ‖ u32 data length ‖ name ‖
data`` (kinds below), ending with ``END``.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import sqlite3
import struct
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import cleanroom
from cleanroom import clock
from cleanroom.contract.bundle import HPKE_SUITE
from cleanroom.contract.documents import canonical_json
from cleanroom.contract.keys import public_key_id
from cleanroom.errors import T_, BundleError, Text, UserError
from cleanroom.room import datasets as stored_datasets
from cleanroom.room import faults, generations, inflight, matching, suppression
from cleanroom.room.state import Room
from cleanroom.room.store import MIGRATIONS
from cleanroom.room.warehouse import derive_key
from cleanroom.sql import table_sql

MAGIC = b"CRBACKUP\x01"
FORMAT = "cleanroom-backup/1"
CHUNK = 4 * 1024 * 1024
MAX_CHUNK = CHUNK + 16
MAX_HEADER = 64 * 1024
BATCH_ROWS = 256 * 1024
_FRAME = struct.Struct(">BHI")
# Frame kinds: a piece of a file, a table's Arrow IPC stream (one batch, or none: the
# schema), the manifest, the end. A file's pieces arrive in order, one file at a time.
FILE, TABLE, MANIFEST, END = 1, 2, 3, 4
FLUSH = b""  # not a frame: the writer's cue to seal what it has (a table's end)


class ArchiveError(BundleError):
    """An archive cannot be opened: not one, truncated, edited, or for other keys."""

    code = "bad_archive"


@dataclass(frozen=True)
class Snapshot:
    """What one backup holds, as the metadata snapshot names it."""

    meta: bytes
    dataset_tables: list[str]
    generation: int | None
    generation_tables: list[str]
    backend: str


def _chunk_key(archive_key: bytes, room_secret: bytes, header_hash: bytes) -> bytes:
    """The payload key: both halves are needed (backup private key, room secret)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=header_hash,
        info=b"cleanroom backup payload v1",
    ).derive(archive_key + derive_key(room_secret, "backup"))


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + struct.pack(">Q", index)


def _aad(header_hash: bytes, index: int, last: bool) -> bytes:
    return header_hash + struct.pack(">QB", index, 1 if last else 0)


def _frame(kind: int, name: str, data: bytes = b"") -> bytes:
    encoded = name.encode()
    return _FRAME.pack(kind, len(encoded), len(data)) + encoded + data


class _Sealer:
    """Plaintext frames in, the archive's bytes out (header first, then whole chunks)."""

    def __init__(self, backup_key: X25519PublicKey, room: Room) -> None:
        archive_key = secrets.token_bytes(32)
        self.header = {
            "format": FORMAT,
            "created_at": clock.stamp(),
            "cleanroom": cleanroom.__version__,
            "schema": len(MIGRATIONS),
            "room_key_id": room.key_id,
            "backup_key_id": public_key_id(backup_key),
        }
        info = b"cleanroom backup key v1\x00" + canonical_json(self.header)
        self.header["sealed_key"] = HPKE_SUITE.encrypt(archive_key, backup_key, info=info).hex()
        raw = canonical_json(self.header)
        self.hash = hashes.Hash(hashes.SHA256())
        self.hash.update(raw)
        self.header_hash = self.hash.finalize()
        self.aead = AESGCM(_chunk_key(archive_key, room.rekey_secret, self.header_hash))
        self.start = MAGIC + struct.pack(">I", len(raw)) + raw
        self.buffer = bytearray()
        self.index = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # keep one back: the last chunk is flagged
            yield self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]

    def flush(self) -> Iterator[bytes]:
        """Seal what is buffered now (at a table's end), so the reader has it."""
        if self.buffer:
            yield self._seal(bytes(self.buffer), last=False)
            self.buffer.clear()

    def close(self) -> bytes:
        return self._seal(bytes(self.buffer), last=True)

    def _seal(self, plain: bytes, *, last: bool) -> bytes:
        sealed = self.aead.encrypt(
            _nonce(self.index), plain, _aad(self.header_hash, self.index, last)
        )
        self.index += 1
        return struct.pack(">I", len(sealed)) + sealed


def _take_snapshot(room: Room, stack: ExitStack) -> Snapshot:
    """Copy the metadata store and pin every table it calls live, atomically w.r.t. drops.

    SQLite's online backup gives one consistent copy; the tables it names are
    read from that copy, and pinned before any drop can be decided.
    """
    with room.pins.lock:
        memory = sqlite3.connect(":memory:")
        try:
            room.store.connection().backup(memory)
            memory.row_factory = sqlite3.Row
            # Opt-out lists are live party data too: a restored room must keep
            # leaving those customers out.
            datasets = sorted(
                {d.table_name for d in stored_datasets.live(memory)}
                | {s.table_name for s in suppression.live_lists(memory)}
            )
            live = generations.live(memory)
            meta = memory.serialize()
        finally:
            memory.close()
        stack.callback(room.pins.hold(inflight.table(name) for name in datasets))
        generation, tables, backend = None, [], "duckdb"
        if live is not None:
            generation, backend = live.generation, live.backend
            tables = sorted(live.tables.values())
            stack.callback(matching.pin_generation(room, generation))  # as a query's pin
    return Snapshot(meta, datasets, generation, tables, backend)


class _Frames:
    """A file-like sink for Arrow's IPC writer: what it writes, collected for one frame."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing buffered here."""

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


_IPC = pa.ipc.IpcWriteOptions(
    compression="zstd"
)  # half the size of plain Arrow (tokens are random bytes)


def _ipc(schema: pa.Schema, batch: pa.RecordBatch | None) -> bytes:
    sink = _Frames()
    with pa.ipc.new_stream(sink, schema, options=_IPC) as writer:
        if batch is not None:
            writer.write_batch(batch)
    return sink.take()


def _table_frames(room: Room, name: str) -> Iterator[tuple[bytes, int]]:
    """A warehouse table as frames: its schema, then one frame per batch; rows per frame."""
    cursor = room.wh.cursor()
    try:
        reader = cursor.execute(f"SELECT * FROM {table_sql(name)}").to_arrow_reader(BATCH_ROWS)  # noqa: S608
        yield _frame(TABLE, name, _ipc(reader.schema, None)), 0
        for batch in reader:
            yield _frame(TABLE, name, _ipc(reader.schema, batch)), batch.num_rows
    finally:
        cursor.close()


def _file_frames(name: str, path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while piece := fh.read(CHUNK):
            yield _frame(FILE, name, piece)
    yield _frame(FILE, name)  # an empty piece ends the file (and makes empty files exist)


def _spark_dir(room: Room) -> Path:
    return room.settings.spark_data or room.paths.root / "spark"


def archive(room: Room, backup_key: X25519PublicKey) -> Generator[bytes, None, None]:
    """The archive's bytes, streamed; nothing is written to disk in the clear.

    Pins are held while the generator runs and released when it ends or is
    closed (a client that disconnects closes it).
    """
    with ExitStack() as stack:
        snap = _take_snapshot(room, stack)
        sealer = _Sealer(backup_key, room)
        yield sealer.start
        rows: dict[str, int] = {}
        files: list[str] = []

        def frames() -> Iterator[bytes]:
            yield from _file_frames_bytes("meta.sqlite", snap.meta)
            files.append("meta.sqlite")
            warehouse = snap.dataset_tables + (
                snap.generation_tables if snap.backend == "duckdb" else []
            )
            for name in warehouse:
                yield FLUSH
                faults.pause("backup.stream")  # crash tests kill the reader here
                rows[name] = 0
                for frame, count in _table_frames(room, name):
                    rows[name] += count
                    yield frame
            extra: list[tuple[str, Path]] = []
            if snap.backend == "spark":
                for name in snap.generation_tables:
                    base = _spark_dir(room) / name
                    extra += [
                        (f"spark/{p.relative_to(base.parent)}", p)
                        for p in sorted(base.rglob("*"))
                        if p.is_file()
                    ]
            reports = room.paths.root / "reports"
            if reports.is_dir():
                extra += [
                    (f"reports/{p.relative_to(reports)}", p)
                    for p in sorted(reports.rglob("*"))
                    if p.is_file()
                ]
            settings = room.paths.root / "room.yaml"
            if settings.is_file():
                extra.append(("room.yaml", settings))
            for name, path in extra:
                files.append(name)
                yield from _file_frames(name, path)
            manifest = {
                "generation": snap.generation,
                "backend": snap.backend,
                "tables": rows,
                "files": files,
            }
            yield _frame(MANIFEST, "manifest.json", canonical_json(manifest))
            yield _frame(END, "")

        for frame in frames():
            yield from sealer.feed(frame) if frame else sealer.flush()
        yield sealer.close()


def _file_frames_bytes(name: str, data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield _frame(FILE, name, data[start : start + CHUNK])
    yield _frame(FILE, name)


def write_archive(chunks: Iterator[bytes], out: Path) -> int:
    """Stream an archive to ``out`` through a temporary name; renamed only when whole.

    A process killed meanwhile leaves ``out`` absent and a ``.partial`` file
    that the next backup to that name removes. An existing archive is never
    overwritten (the final step is a hard link, which refuses an existing name).
    """
    if out.exists():
        raise UserError(T_("%(out)s: exists; an archive is never overwritten", out=out))
    partial = out.with_name(f".{out.name}.partial")
    partial.unlink(missing_ok=True)
    written = 0
    try:
        with partial.open("xb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                written += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(partial, out)  # whole, under its name, at once; never over another file
        partial.unlink()
        _fsync_dir(out.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written


def _fsync_dir(directory: Path) -> None:
    """Make the new name durable (a crash after the link must not lose it)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """An archive's header, its frames decrypted and authenticated as they are read."""

    header: dict[str, Any]
    frames: Iterator[tuple[int, str, bytes]]


def _read_exact(fh: BinaryIO, n: int, truncated: Text) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ArchiveError(truncated)
    return data


def open_archive(
    fh: BinaryIO, backup_key: X25519PrivateKey, room_secret: bytes, room_key_id: str
) -> Opened:
    """Check the header against the keys given; frames come out as they authenticate."""
    if fh.read(len(MAGIC)) != MAGIC:
        raise ArchiveError(T_("not a cleanroom backup archive"))
    (size,) = struct.unpack(">I", _read_exact(fh, 4, T_("archive is truncated (header length)")))
    if size > MAX_HEADER:
        raise ArchiveError(T_("archive header is implausibly large"))
    raw = _read_exact(fh, size, T_("archive is truncated (header)"))
    try:
        header = json.loads(raw)
        sealed = bytes.fromhex(header.pop("sealed_key"))
    except (ValueError, KeyError, TypeError):
        raise ArchiveError(T_("archive header is damaged")) from None
    if header.get("format") != FORMAT:
        raise ArchiveError(
            T_(
                "archive format %(format)s is not %(expected)s",
                format=repr(header.get("format")),
                expected=FORMAT,
            )
        )
    if header.get("backup_key_id") != public_key_id(backup_key.public_key()):
        raise ArchiveError(
            T_(
                "archive is sealed to backup key %(sealed_to)s, not to %(given)s",
                sealed_to=str(header.get("backup_key_id")),
                given=public_key_id(backup_key.public_key()),
            )
        )
    if header.get("room_key_id") != room_key_id:
        raise ArchiveError(
            T_(
                "archive is of room %(archived)s; the keys given are of room %(given)s",
                archived=str(header.get("room_key_id")),
                given=room_key_id,
            )
        )
    info = b"cleanroom backup key v1\x00" + canonical_json(header)
    try:
        archive_key = HPKE_SUITE.decrypt(sealed, backup_key, info=info)
    except Exception:
        raise ArchiveError(T_("archive key does not open with this backup key")) from None
    digest = hashes.Hash(hashes.SHA256())
    digest.update(raw)
    header_hash = digest.finalize()
    aead = AESGCM(_chunk_key(archive_key, room_secret, header_hash))
    return Opened(header, _frames(_plain(fh, aead, header_hash)))


def _plain(fh: BinaryIO, aead: AESGCM, header_hash: bytes) -> Iterator[bytes]:
    index = 0
    pending = _next_chunk(fh)
    if pending is None:
        raise ArchiveError(T_("archive is truncated (no payload)"))
    while pending is not None:
        following = _next_chunk(fh)
        last = following is None
        try:
            yield aead.decrypt(_nonce(index), pending, _aad(header_hash, index, last))
        except InvalidTag:
            raise ArchiveError(
                T_(
                    "archive chunk %(index)s does not authenticate (truncated, reordered or "
                    "edited; or the room secret is not this room's)",
                    index=index,
                )
            ) from None
        if last:
            return
        pending, index = following, index + 1


def _next_chunk(fh: BinaryIO) -> bytes | None:
    head = fh.read(4)
    if not head:
        return None
    if len(head) != 4:
        raise ArchiveError(T_("archive is truncated (chunk length)"))
    (size,) = struct.unpack(">I", head)
    if size > MAX_CHUNK:
        raise ArchiveError(T_("archive chunk is implausibly large"))
    return _read_exact(fh, size, T_("archive is truncated (chunk)"))


def _frames(chunks: Iterator[bytes]) -> Iterator[tuple[int, str, bytes]]:
    buffer = bytearray()
    ended = False
    for chunk in chunks:
        if ended:
            raise ArchiveError(T_("archive has data after its end"))
        buffer += chunk
        while len(buffer) >= _FRAME.size:
            kind, name_len, data_len = _FRAME.unpack_from(buffer)
            total = _FRAME.size + name_len + data_len
            if len(buffer) < total:
                break
            name = bytes(buffer[_FRAME.size : _FRAME.size + name_len]).decode()
            data = bytes(buffer[_FRAME.size + name_len : total])
            del buffer[:total]
            if kind == END:
                ended = True
                break
            yield kind, name, data
    if not ended or buffer:
        raise ArchiveError(T_("archive ends without its end frame (truncated)"))


def read_ipc(data: bytes) -> pa.Table:
    """One TABLE frame's Arrow stream."""
    return pa.ipc.open_stream(io.BytesIO(data)).read_all()


class RestoreRefused(UserError):
    """A restore that would not give a room fit to serve; nothing was created."""

    code = "restore_refused"
    status = 409
