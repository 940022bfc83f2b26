r"""Sealed bundles: the only thing a party ever sends the room.

Layout (all integers big-endian)::

    magic     b"CRBUNDLE" ‖ version u8 (=1)
    header    u32 length ‖ canonical JSON (party, dataset, bundle id, schema,
              key ids, the HPKE-wrapped data key, chunk size)
    chunks    repeated: kind u8 (1 = more follow, 2 = last) ‖ u32 length ‖ AES-256-GCM ciphertext
    manifest  u32 length ‖ canonical JSON (rows, chunks, plaintext SHA-256, summary)
    signature 64 bytes Ed25519 over b"cleanroom-bundle-v1\0" ‖ SHA-256(everything above)

The payload (a Parquet file) is encrypted in chunks under a random 256-bit
data key. Chunk *i* uses the nonce ``0x00000000 ‖ u64(i)`` — unique because the
key is fresh per bundle — and authenticates ``SHA-256(header) ‖ u64(i) ‖ last
flag`` as associated data (the STREAM construction), so reordered, dropped,
duplicated or truncated chunks fail to decrypt even without the signature. The
data key is wrapped with HPKE (RFC 9180, X25519/HKDF-SHA256/AES-256-GCM) to the
room's public key, its ``info`` binding bundle id, party, dataset and room key
id. The signature covers every byte, so the room checks authorship before it
decrypts anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from cleanroom import clock
from cleanroom.contract.documents import canonical_json
from cleanroom.contract.keys import public_key_id
from cleanroom.errors import T_, BundleError, SignatureError

MAGIC = b"CRBUNDLE\x01"
FORMAT = "cleanroom-bundle/1"
CHUNK_SIZE = 8 * 1024 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
MAX_JSON = 1024 * 1024
_SIG_CONTEXT = b"cleanroom-bundle-v1\x00"
_MORE, _LAST = 1, 2
_TAG = 16
HPKE_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def _hpke_info(header: dict[str, Any]) -> bytes:
    keys = ("bundle_id", "party", "dataset", "room_key_id")
    return b"cleanroom bundle key v1\x00" + canonical_json({k: header[k] for k in keys})


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + struct.pack(">Q", index)


def _aad(header_hash: bytes, index: int, last: bool) -> bytes:
    return header_hash + struct.pack(">QB", index, 1 if last else 0)


def _signed_message(digest: bytes) -> bytes:
    return _SIG_CONTEXT + digest


class BundleWriter:
    """Streams a payload into a sealed bundle; nothing lands at ``path`` unless it completes.

    Use as a context manager and call :meth:`write` with payload bytes, then
    :meth:`finish` with the manifest. On an exception the partial file is
    removed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        party: str,
        dataset: str,
        metadata: dict[str, Any],
        room_key: X25519PublicKey,
        signing_key: Ed25519PrivateKey,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.path = Path(path)
        self._signing_key = signing_key
        self._chunk_size = chunk_size
        data_key = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(data_key)
        header: dict[str, Any] = {
            **metadata,
            "format": FORMAT,
            "bundle_id": secrets.token_hex(16),
            "party": party,
            "dataset": dataset,
            "created_at": clock.stamp(),
            "room_key_id": public_key_id(room_key),
            "signer_key_id": public_key_id(signing_key.public_key()),
            "signer_public_key": base64.b64encode(
                signing_key.public_key().public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw
                )
            ).decode(),
            "cipher": {
                "payload": "AES-256-GCM STREAM",
                "key_wrap": "HPKE X25519 HKDF-SHA256 AES-256-GCM",
                "chunk_size": chunk_size,
            },
        }
        header["wrapped_key"] = base64.b64encode(
            HPKE_SUITE.encrypt(data_key, room_key, info=_hpke_info(header))
        ).decode()
        self.header = header
        self._header_bytes = canonical_json(header)
        self._header_hash = hashlib.sha256(self._header_bytes).digest()
        self._plain_hash = hashlib.sha256()
        self._buffer = bytearray()
        self._index = 0
        self._plain_bytes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".partial", dir=self.path.parent
        )
        self._tmp = Path(tmp)
        self._fh: BinaryIO = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self._emit(MAGIC + struct.pack(">I", len(self._header_bytes)) + self._header_bytes)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if not self._fh.closed:
            self._fh.close()
        if exc_type is not None or self._tmp.exists():
            self._tmp.unlink(missing_ok=True)

    @property
    def bundle_id(self) -> str:
        """Unique per bundle; the room refuses one it has seen."""
        return str(self.header["bundle_id"])

    # pyarrow's writers treat any object with write/flush/closed as a sink.
    closed = False

    def flush(self) -> None:
        """Nothing to do: chunks are written as they fill."""

    def tell(self) -> int:
        """Payload bytes written so far (the sink protocol wants it)."""
        return self._plain_bytes + len(self._buffer)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer payload bytes; encrypt and write each full chunk."""
        self._buffer += data
        while len(self._buffer) > self._chunk_size:
            self._seal(bytes(self._buffer[: self._chunk_size]), last=False)
            del self._buffer[: self._chunk_size]
        return len(data)

    def _emit(self, data: bytes) -> None:
        self._digest.update(data)
        self._fh.write(data)

    def _seal(self, plaintext: bytes, *, last: bool) -> None:
        self._plain_hash.update(plaintext)
        self._plain_bytes += len(plaintext)
        ct = self._aead.encrypt(
            _nonce(self._index), plaintext, _aad(self._header_hash, self._index, last)
        )
        self._emit(struct.pack(">BI", _LAST if last else _MORE, len(ct)) + ct)
        self._index += 1

    def finish(self, manifest: dict[str, Any]) -> Path:
        """Seal the last chunk, write manifest and signature, and move into place."""
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        doc = {
            **manifest,
            "chunks": self._index,
            "payload_bytes": self._plain_bytes,
            "payload_sha256": self._plain_hash.hexdigest(),
        }
        body = canonical_json(doc)
        self._emit(struct.pack(">I", len(body)) + body)
        self._fh.write(self._signing_key.sign(_signed_message(self._digest.digest())))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self._tmp, self.path)
        self.closed = True
        return self.path


@dataclass(frozen=True)
class BundleInfo:
    """What can be known of a bundle without its key: header, manifest, signature."""

    path: Path
    name: str  # how messages refer to the bundle (a file name, or "uploaded bundle")
    header: dict[str, Any]
    manifest: dict[str, Any]
    header_hash: bytes
    chunk_offsets: list[tuple[int, int, bool]]  # (offset, length, last) of each ciphertext
    digest: bytes  # SHA-256 of everything the signature covers
    signature: bytes

    @property
    def bundle_id(self) -> str:
        """See :attr:`BundleWriter.bundle_id`."""
        return str(self.header["bundle_id"])

    def verify_signer(self, key: Ed25519PublicKey) -> None:
        """Require the signature of this key (the room passes the party's registered key)."""
        try:
            key.verify(self.signature, _signed_message(self.digest))
        except InvalidSignature:
            if public_key_id(key) != self.header.get("signer_key_id"):
                raise SignatureError(
                    T_(
                        "%(self)s: not signed by party '%(get)s' (signed with key %(get2)s, "
                        "expected %(public_key_id)s)",
                        self=self.name,
                        get=self.header.get("party"),
                        get2=self.header.get("signer_key_id"),
                        public_key_id=public_key_id(key),
                    )
                ) from None
            raise SignatureError(
                T_("%(self)s: signature does not verify (bundle altered)", self=self.name)
            ) from None


class _Reader:
    def __init__(self, name: str, fh: BinaryIO) -> None:
        self.path, self.fh, self.digest = name, fh, hashlib.sha256()

    def take(self, n: int, what: str, *, hash_it: bool = True) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise BundleError(
                T_(
                    "%(path)s: truncated bundle (ends inside the %(what)s)",
                    path=self.path,
                    what=what,
                )
            )
        if hash_it:
            self.digest.update(data)
        return data

    def json(self, what: str) -> dict[str, Any]:
        (length,) = struct.unpack(">I", self.take(4, what))
        if length > MAX_JSON:
            raise BundleError(
                T_(
                    "%(path)s: %(what)s is %(length)s bytes, over the %(max_json)s limit",
                    path=self.path,
                    what=what,
                    length=length,
                    max_json=MAX_JSON,
                )
            )
        try:
            doc = json.loads(self.take(length, what))
        except (ValueError, UnicodeDecodeError):
            raise BundleError(
                T_(
                    "%(path)s: %(what)s is not valid JSON (damaged bundle)",
                    path=self.path,
                    what=what,
                )
            ) from None
        if not isinstance(doc, dict):
            raise BundleError(
                T_(
                    "%(path)s: %(what)s is not a JSON object (damaged bundle)",
                    path=self.path,
                    what=what,
                )
            )
        return doc


def read_bundle(
    path: str | Path, *, expected_signer: Ed25519PublicKey | None = None, name: str | None = None
) -> BundleInfo:
    """Parse a bundle and verify its signature, without decrypting anything.

    With ``expected_signer`` (the room passes the key registered for the
    party) the signature must be that key's; without it, the key embedded in
    the header is used, which proves integrity but not authorship.
    """
    path = Path(path)
    name = name or str(path)
    try:
        fh = path.open("rb")
    except OSError as err:
        raise BundleError(
            T_("%(name)s: cannot open bundle (%(strerror)s)", name=name, strerror=err.strerror)
        ) from None
    with fh:
        r = _Reader(name, fh)
        if r.take(len(MAGIC), "file signature") != MAGIC:
            raise BundleError(
                T_("%(name)s: not a cleanroom bundle (or an unsupported version)", name=name)
            )
        header = r.json("header")
        header_hash = hashlib.sha256(canonical_json(header)).digest()
        if header.get("format") != FORMAT:
            raise BundleError(
                T_(
                    "%(name)s: unsupported bundle format %(get)s",
                    name=name,
                    get=repr(header.get("format")),
                )
            )
        try:
            chunk_size = int(header["cipher"]["chunk_size"])
            embedded = Ed25519PublicKey.from_public_bytes(
                base64.b64decode(header["signer_public_key"], validate=True)
            )
        except (KeyError, TypeError, ValueError):
            raise BundleError(
                T_("%(name)s: header is missing fields (damaged bundle)", name=name)
            ) from None
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise BundleError(
                T_(
                    "%(name)s: chunk size %(chunk_size)s is out of range",
                    name=name,
                    chunk_size=chunk_size,
                )
            )
        chunks: list[tuple[int, int, bool]] = []
        while True:
            kind, length = struct.unpack(">BI", r.take(5, f"chunk {len(chunks)}"))
            if kind not in (_MORE, _LAST) or not _TAG <= length <= chunk_size + _TAG:
                raise BundleError(
                    T_(
                        "%(name)s: chunk %(count)s has a damaged frame",
                        name=name,
                        count=len(chunks),
                    )
                )
            offset = fh.tell()
            r.digest.update(r.take(length, f"chunk {len(chunks)}", hash_it=False))
            chunks.append((offset, length, kind == _LAST))
            if kind == _LAST:
                break
        manifest = r.json("manifest")
        signature = r.take(64, "signature", hash_it=False)
        if fh.read(1):
            raise BundleError(T_("%(name)s: unexpected bytes after the signature", name=name))
    info = BundleInfo(
        path, name, header, manifest, header_hash, chunks, r.digest.digest(), signature
    )
    info.verify_signer(expected_signer or embedded)
    if manifest.get("chunks") != len(chunks):
        raise BundleError(
            T_(
                "%(name)s: manifest says %(get)s chunks, found %(count)s",
                name=name,
                get=manifest.get("chunks"),
                count=len(chunks),
            )
        )
    return info


def iter_payload(info: BundleInfo, room_key: X25519PrivateKey) -> Iterator[bytes]:
    """Decrypt chunk by chunk (bounded memory), checking order and completeness."""
    path = info.path
    try:
        wrapped = base64.b64decode(info.header["wrapped_key"], validate=True)
        data_key = HPKE_SUITE.decrypt(wrapped, room_key, info=_hpke_info(info.header))
    except (KeyError, ValueError, InvalidTag):
        raise BundleError(
            T_(
                "%(info)s: cannot unwrap the data key: sealed to another room key "
                "(bundle is for room key %(get)s, this room is %(public_key_id)s)",
                info=info.name,
                get=info.header.get("room_key_id"),
                public_key_id=public_key_id(room_key.public_key()),
            )
        ) from None
    aead = AESGCM(data_key)
    plain_hash = hashlib.sha256()
    with path.open("rb") as fh:
        for index, (offset, length, last) in enumerate(info.chunk_offsets):
            fh.seek(offset)
            ct = fh.read(length)
            try:
                chunk = aead.decrypt(_nonce(index), ct, _aad(info.header_hash, index, last))
            except InvalidTag:
                raise BundleError(
                    T_(
                        "%(info)s: chunk %(index)s fails authentication (altered, reordered or "
                        "truncated)",
                        info=info.name,
                        index=index,
                    )
                ) from None
            plain_hash.update(chunk)
            yield chunk
    if plain_hash.hexdigest() != info.manifest.get("payload_sha256"):
        raise BundleError(
            T_("%(info)s: payload does not match its manifest digest", info=info.name)
        )


def open_bundle(
    path: str | Path,
    room_key: X25519PrivateKey,
    out: BinaryIO,
    *,
    expected_signer: Ed25519PublicKey | None = None,
) -> BundleInfo:
    """Verify, then decrypt the payload into ``out``; the room's one entry point."""
    info = read_bundle(path, expected_signer=expected_signer)
    for chunk in iter_payload(info, room_key):
        out.write(chunk)
    return info
