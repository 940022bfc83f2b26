"""The room's key for Parquet modular encryption (PME) on Spark, and the KMS clients.

Spark's tables are Parquet files with an encrypted footer and every column
encrypted (AES-GCM). Each file's random data keys are wrapped (twice:
parquet's double wrapping) under a *master key* that a KMS client hands out
by name; the room's master key is derived from the room secret (HKDF,
purpose ``spark-parquet``), so the Parquet is unreadable without the room's
key files, exactly like the DuckDB warehouse.

Two writers, one format. Spark (parquet-mr) writes what it computes itself,
through the KMS client ``java/RoomKeyKms.java`` (a ``LocalWrapKmsClient``)
that reads the key from a Hadoop property set per read and write — never in
the Spark configuration — whose name contains ``secret`` so that Spark's
default redaction hides it from plans, logs and the UI (parquet-mr's own
``InMemoryKMS`` would do the same but ships only in its test jar). Tables
leaving the warehouse are written by Arrow's C++ Parquet writer straight from
DuckDB's Arrow stream (:meth:`ParquetKey.encryption_properties`, ~40x faster
than passing the rows through the JVM), with :class:`RoomKms` wrapping keys
exactly as ``LocalWrapKmsClient`` does: AES-GCM under the master key with its
id as associated data, serialized as ``{"encryptedKey", "masterKeyVersion"}``.
Both directions are tested (``tests/unit/room/test_parquet_key.py``).

The client is compiled once with the JDK's ``javac`` against pyspark's own
parquet and hadoop jars (``python -m cleanroom.room.backends.kms`` does it
ahead of time, as the Docker image's build stage does); without a prebuilt jar
the room compiles it into its private work directory on first use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cleanroom.errors import UserError
from cleanroom.room.warehouse import derive_key

KMS_CLASS = "cleanroom.kms.RoomKeyKms"
KEYS_PROPERTY = "cleanroom.parquet.secret.master.keys"
SOURCE = Path(__file__).parent / "java" / "RoomKeyKms.java"
_CLASSPATH = ("parquet-hadoop-*.jar", "parquet-common-*.jar", "hadoop-client-api-*.jar")


@dataclass(frozen=True)
class ParquetKey:
    """The room's PME master key and its name; never printed."""

    key_id: str
    key: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, secret: bytes) -> ParquetKey:
        """The key and an id that reveals nothing about it (both HKDF outputs)."""
        key_id = "room-" + derive_key(secret, "spark-parquet key id")[:8].hex()
        return cls(key_id, derive_key(secret, "spark-parquet"))

    def read_options(self) -> dict[str, str]:
        """Hadoop properties a Spark read of the room's Parquet needs."""
        return {
            "parquet.crypto.factory.class": (
                "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory"
            ),
            "parquet.encryption.kms.client.class": KMS_CLASS,
            # One KMS client (and its key cache) per room, even in a shared JVM.
            "parquet.encryption.kms.instance.id": self.key_id,
            KEYS_PROPERTY: f"{self.key_id}:{base64.b64encode(self.key).decode()}",
        }

    def write_options(self) -> dict[str, str]:
        """Encrypt the footer and every column under the room's key (AES-GCM)."""
        return {
            **self.read_options(),
            "parquet.encryption.uniform.key": self.key_id,
            "parquet.encryption.algorithm": "AES_GCM_V1",
            "parquet.encryption.plaintext.footer": "false",
        }

    def _factory(self) -> tuple[pe.CryptoFactory, pe.KmsConnectionConfig]:
        factory = pe.CryptoFactory(lambda _config: RoomKms(self))
        return factory, pe.KmsConnectionConfig(kms_instance_id=self.key_id)

    def encryption_properties(self) -> pe.FileEncryptionProperties:
        """Arrow's writer settings matching :meth:`write_options` (new data keys per call)."""
        factory, connection = self._factory()
        return factory.file_encryption_properties(
            connection,
            pe.EncryptionConfiguration(
                footer_key=self.key_id,
                uniform_encryption=True,
                encryption_algorithm="AES_GCM_V1",
                plaintext_footer=False,
                double_wrapping=True,
            ),
        )

    def decryption_properties(self) -> pe.FileDecryptionProperties:
        """Arrow's reader settings for the room's Parquet (whichever writer wrote it)."""
        factory, connection = self._factory()
        return factory.file_decryption_properties(connection, pe.DecryptionConfiguration())


class RoomKms(pe.KmsClient):  # type: ignore[misc]  # pyarrow ships no stubs
    """``LocalWrapKmsClient``'s key wrapping for Arrow: AES-GCM, the key id as AAD."""

    def __init__(self, key: ParquetKey) -> None:
        super().__init__()
        self._key = key

    def _aead(self, key_id: str) -> AESGCM:
        if key_id != self._key.key_id:
            raise UserError(f"this room holds no Parquet key {key_id!r}")
        return AESGCM(self._key.key)

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        """Wrap one key encryption key; fresh nonce, stored in front of the ciphertext."""
        nonce = os.urandom(12)
        sealed = self._aead(master_key_identifier).encrypt(
            nonce, key_bytes, master_key_identifier.encode()
        )
        encoded = base64.b64encode(nonce + sealed).decode()
        return json.dumps({"encryptedKey": encoded, "masterKeyVersion": "NO_VERSION"})

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        """The inverse of :meth:`wrap_key`; a wrong key or a changed byte fails."""
        try:
            blob = base64.b64decode(json.loads(wrapped_key)["encryptedKey"], validate=True)
            return self._aead(master_key_identifier).decrypt(
                blob[:12], blob[12:], master_key_identifier.encode()
            )
        except (ValueError, KeyError, TypeError, InvalidTag) as err:
            raise UserError("a Parquet key did not unwrap under the room's key") from err


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _digest() -> str:
    import pyspark

    return hashlib.sha256(SOURCE.read_bytes() + pyspark.__version__.encode()).hexdigest()[:12]


def jar_name() -> str:
    """The jar's file name: changes with the source and with pyspark's version."""
    return f"room-kms-{_digest()}.jar"


def _javac() -> str:
    home = os.environ.get("JAVA_HOME")
    candidates = [str(Path(home) / "bin" / "javac")] if home else []
    found = shutil.which("javac")
    candidates += [found] if found else []
    for candidate in candidates:
        if Path(candidate).exists():
            return candidate
    raise UserError(
        "backend 'spark' needs the room's Parquet key client: no prebuilt jar was found and "
        "no JDK (javac) to build it; run `python -m cleanroom.room.backends.kms` where a JDK "
        "is installed (the Docker image does this at build time)"
    )


def build_jar(out: Path) -> Path:
    """Compile the KMS client against pyspark's jars into the jar ``out`` (atomically)."""
    jars = _pyspark_jars()
    classpath = []
    for pattern in _CLASSPATH:
        matches = sorted(jars.glob(pattern))
        if not matches:
            raise UserError(f"pyspark at {jars} has no {pattern}; reinstall pyspark")
        classpath.append(str(matches[-1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        classes = Path(tmp) / "classes"
        javac = [_javac(), "--release", "17", "-nowarn", "-d", str(classes)]
        done = subprocess.run(
            [*javac, "-cp", os.pathsep.join(classpath), str(SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise UserError(f"javac could not build the Parquet key client:\n{done.stderr[-2000:]}")
        staged = Path(tmp) / out.name
        with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        os.replace(staged, out)
    return out


def kms_jar(work: Path) -> Path:
    """The KMS client jar: prebuilt beside the source, else built once into ``work``."""
    name = jar_name()
    for path in (SOURCE.parent / name, work / name):
        if path.exists():
            return path
    return build_jar(work / name)


def main() -> None:
    """Build the jar beside the Java source (or into the directory given)."""
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE.parent
    print(build_jar(target / jar_name()))


if __name__ == "__main__":
    main()
