"""Key files: generation, loading, fingerprints.

Asymmetric keys are standard PEM (PKCS#8 private keys, optionally encrypted
with a passphrase; SubjectPublicKeyInfo public keys). Symmetric keys (the group
match key, the room secret) live in a small JSON envelope so that they carry
their kind and key id, and can be sealed under a passphrase with scrypt +
AES-256-GCM. Private material is written owner-only (0600), never over an
existing file, and never printed.

Key ids let two parties compare keys without revealing them: for a public key
the SHA-256 of its raw bytes; for a symmetric key an HMAC of a fixed label under
the key (a commitment that reveals nothing about a 256-bit random key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from cleanroom.errors import T_, KeyFileError

SymmetricKind = Literal["match-key", "room-secret"]
PASSPHRASE_ENV = "CLEANROOM_KEY_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
_ENVELOPE = "cleanroom-key/1"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


def passphrase_from_env() -> bytes | None:
    """The passphrase for protected key files, if the operator set one."""
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


def public_key_id(key: X25519PublicKey | Ed25519PublicKey) -> str:
    """Fingerprint of a public key: first 128 bits of SHA-256 of its raw bytes, hex."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


def symmetric_key_id(kind: SymmetricKind, key: bytes) -> str:
    """Commitment to a symmetric key; comparable by anyone, reversible by no one."""
    label = f"cleanroom {kind} id v1".encode()
    return hmac.new(key, label, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, repr=False)
class SymmetricKey:
    """A 256-bit secret with its kind and id. ``repr`` never shows the secret."""

    kind: SymmetricKind
    secret: bytes

    @property
    def key_id(self) -> str:
        """See :func:`symmetric_key_id`."""
        return symmetric_key_id(self.kind, self.secret)

    def __repr__(self) -> str:
        return f"SymmetricKey(kind={self.kind!r}, key_id={self.key_id!r})"


def new_symmetric_key(kind: SymmetricKind) -> SymmetricKey:
    """32 bytes from the OS's CSPRNG."""
    return SymmetricKey(kind, secrets.token_bytes(32))


def _write_private(path: Path, data: bytes, *, force: bool = False) -> None:
    """Create the file owner-only from the start, so there is no window of 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(
            T_("%(path)s: already exists; refusing to overwrite a key", path=path)
        ) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _write_public(path: Path, data: bytes, *, force: bool = False) -> None:
    if path.exists() and not force:
        raise KeyFileError(T_("%(path)s: already exists; refusing to overwrite a key", path=path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(T_("%(path)s: no such key file", path=path)) from None
    except OSError as err:
        raise KeyFileError(
            T_("%(path)s: cannot read key file (%(strerror)s)", path=path, strerror=err.strerror)
        ) from None


def _scrypt(passphrase: bytes, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, **_SCRYPT).derive(passphrase)


def save_symmetric_key(
    path: Path, key: SymmetricKey, *, passphrase: bytes | None = None, force: bool = False
) -> None:
    """Write the envelope; sealed under the passphrase when one is given."""
    doc: dict[str, object] = {"format": _ENVELOPE, "kind": key.kind, "key_id": key.key_id}
    if passphrase:
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        aad = f"{_ENVELOPE}|{key.kind}|{key.key_id}".encode()
        sealed = AESGCM(_scrypt(passphrase, salt)).encrypt(nonce, key.secret, aad)
        doc["sealed"] = {
            "kdf": "scrypt",
            **_SCRYPT,
            "salt": base64.b64encode(salt).decode(),
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(sealed).decode(),
        }
    else:
        doc["key"] = base64.b64encode(key.secret).decode()
    _write_private(path, (json.dumps(doc, indent=2) + "\n").encode(), force=force)


def load_symmetric_key(
    path: str | Path, kind: SymmetricKind, *, passphrase: bytes | None = None
) -> SymmetricKey:
    """Read and check an envelope: right kind, intact, id matching the key."""
    path = Path(path)
    try:
        doc = json.loads(_read(path))
        if not isinstance(doc, dict) or doc.get("format") != _ENVELOPE:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(
            T_("%(path)s: not a cleanroom key file (truncated or the wrong file?)", path=path)
        ) from None
    if doc.get("kind") != kind:
        raise KeyFileError(
            T_(
                "%(path)s: holds a %(get)s, expected a %(kind)s",
                path=path,
                get=str(doc.get("kind")),
                kind=kind,
            )
        )
    try:
        if "sealed" in doc:
            if not passphrase:
                raise KeyFileError(
                    T_(
                        "%(path)s: is passphrase-protected; set %(passphrase_env)s to open it",
                        path=path,
                        passphrase_env=PASSPHRASE_ENV,
                    )
                )
            s = doc["sealed"]
            aad = f"{_ENVELOPE}|{kind}|{doc['key_id']}".encode()
            kek = _scrypt(passphrase, base64.b64decode(s["salt"], validate=True))
            try:
                secret = AESGCM(kek).decrypt(
                    base64.b64decode(s["nonce"], validate=True),
                    base64.b64decode(s["ciphertext"], validate=True),
                    aad,
                )
            except InvalidTag:
                raise KeyFileError(
                    T_("%(path)s: wrong passphrase (or the file was altered)", path=path)
                ) from None
        else:
            secret = base64.b64decode(doc["key"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise KeyFileError(
            T_("%(path)s: key file is damaged (missing or malformed fields)", path=path)
        ) from None
    key = SymmetricKey(kind, secret)
    if len(secret) != 32 or not hmac.compare_digest(key.key_id, str(doc.get("key_id", ""))):
        raise KeyFileError(
            T_("%(path)s: key file is damaged (key does not match its key id)", path=path)
        )
    return key


def _encryption(passphrase: bytes | None) -> serialization.KeySerializationEncryption:
    if passphrase:
        return serialization.BestAvailableEncryption(passphrase)
    return serialization.NoEncryption()


def save_private_key(
    path: Path,
    key: X25519PrivateKey | Ed25519PrivateKey,
    *,
    passphrase: bytes | None = None,
    force: bool = False,
) -> None:
    """PKCS#8 PEM, owner-only."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _encryption(passphrase)
    )
    _write_private(path, pem, force=force)


def save_public_key(
    path: Path, key: X25519PublicKey | Ed25519PublicKey, *, force: bool = False
) -> None:
    """SubjectPublicKeyInfo PEM."""
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_public(path, pem, force=force)


def _load_private(path: Path, passphrase: bytes | None) -> object:
    data = _read(path)
    try:
        return serialization.load_pem_private_key(data, password=passphrase or None)
    except TypeError:
        if passphrase:
            raise KeyFileError(
                T_(
                    "%(path)s: key is not passphrase-protected; unset %(passphrase_env)s",
                    path=path,
                    passphrase_env=PASSPHRASE_ENV,
                )
            ) from None
        raise KeyFileError(
            T_(
                "%(path)s: is passphrase-protected; set %(passphrase_env)s to open it",
                path=path,
                passphrase_env=PASSPHRASE_ENV,
            )
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            T_(
                "%(path)s: not a readable private key (truncated, damaged, or wrong passphrase)",
                path=path,
            )
        ) from None


def _load_public(path: Path) -> object:
    data = _read(path)
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            T_("%(path)s: not a readable public key (truncated or damaged)", path=path)
        ) from None


def load_room_private_key(path: str | Path, passphrase: bytes | None = None) -> X25519PrivateKey:
    """The room's HPKE private key."""
    key = _load_private(Path(path), passphrase)
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(T_("%(path)s: is not a room (X25519) private key", path=path))
    return key


def load_room_public_key(path: str | Path) -> X25519PublicKey:
    """The room's HPKE public key, which parties seal bundles to."""
    key = _load_public(Path(path))
    if not isinstance(key, X25519PublicKey):
        raise KeyFileError(T_("%(path)s: is not a room (X25519) public key", path=path))
    return key


def load_signing_key(path: str | Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """A party's Ed25519 signing key."""
    key = _load_private(Path(path), passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(T_("%(path)s: is not a party (Ed25519) signing key", path=path))
    return key


def load_verify_key(path: str | Path) -> Ed25519PublicKey:
    """A party's Ed25519 public key, as registered with the room."""
    key = _load_public(Path(path))
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(T_("%(path)s: is not a party (Ed25519) public key", path=path))
    return key


@dataclass(frozen=True)
class WrittenKeys:
    """What a key command wrote, for the CLI to report (ids and paths, no secrets)."""

    files: list[Path]
    key_ids: dict[str, str]


def generate_room_keys(
    out: Path, *, passphrase: bytes | None = None, force: bool = False
) -> WrittenKeys:
    """The room's HPKE key pair and its re-keying secret."""
    private = X25519PrivateKey.generate()
    secret = new_symmetric_key("room-secret")
    files = [out / "room.key", out / "room.pub", out / "room.secret"]
    save_private_key(files[0], private, passphrase=passphrase, force=force)
    save_public_key(files[1], private.public_key(), force=force)
    save_symmetric_key(files[2], secret, passphrase=passphrase, force=force)
    return WrittenKeys(
        files, {"room_key_id": public_key_id(private.public_key()), "room_secret_id": secret.key_id}
    )


def generate_party_keys(
    party: str, out: Path, *, passphrase: bytes | None = None, force: bool = False
) -> WrittenKeys:
    """A party's Ed25519 signing key pair; the .pub goes to the room's policy."""
    private = Ed25519PrivateKey.generate()
    files = [out / f"{party}.key", out / f"{party}.pub"]
    save_private_key(files[0], private, passphrase=passphrase, force=force)
    save_public_key(files[1], private.public_key(), force=force)
    return WrittenKeys(files, {"signing_key_id": public_key_id(private.public_key())})


def generate_match_key(
    path: Path, *, passphrase: bytes | None = None, force: bool = False
) -> WrittenKeys:
    """The group match key: shared among the parties, never given to the room."""
    key = new_symmetric_key("match-key")
    save_symmetric_key(path, key, passphrase=passphrase, force=force)
    return WrittenKeys([path], {"match_key_id": key.key_id})


def generate_backup_keys(
    out: Path, *, passphrase: bytes | None = None, force: bool = False
) -> WrittenKeys:
    """The operator's backup key pair: the room gets ``backup.pub``; ``backup.key`` stays away.

    Archives are sealed to the public key (HPKE), so a room that writes them
    (even on a schedule) can never read one back, and a stolen archive is
    useless without the private key, which the operator keeps off the room's
    machine, and the room's own secret.
    """
    private = X25519PrivateKey.generate()
    files = [out / "backup.key", out / "backup.pub"]
    save_private_key(files[0], private, passphrase=passphrase, force=force)
    save_public_key(files[1], private.public_key(), force=force)
    return WrittenKeys(files, {"backup_key_id": public_key_id(private.public_key())})


def load_backup_private_key(path: str | Path, passphrase: bytes | None = None) -> X25519PrivateKey:
    """The operator's backup private key (``cleanroom keys backup``), for a restore."""
    key = _load_private(Path(path), passphrase)
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(T_("%(path)s: is not a backup (X25519) private key", path=path))
    return key


def load_backup_public_key(path: str | Path) -> X25519PublicKey:
    """The backup public key archives are sealed to (setting ``backup_key``)."""
    key = _load_public(Path(path))
    if not isinstance(key, X25519PublicKey):
        raise KeyFileError(T_("%(path)s: is not a backup (X25519) public key", path=path))
    return key
