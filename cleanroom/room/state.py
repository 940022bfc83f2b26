"""The room: its directory, keys, stores and policy, opened together.

Layout of a room directory::

    keys/room.key, room.pub, room.secret   HPKE key pair and the re-keying secret
    meta.sqlite                            metadata store (no party data, no secrets)
    warehouse.duckdb                       party data, encrypted at rest
    uploads/                               bundles being ingested (still sealed)
    tmp/                                   DuckDB spill files (encrypted)
    room.yaml                              optional settings
    logs/service.log, reports/             the service log, published reports

Every file is 0600 and every directory 0700 (``cleanroom.room.files``).
"""

from __future__ import annotations

import hashlib
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from cleanroom.contract.keys import (
    generate_room_keys,
    load_room_private_key,
    load_symmetric_key,
    passphrase_from_env,
    public_key_id,
)
from cleanroom.errors import T_, UserError
from cleanroom.room import faults, inflight
from cleanroom.room.audit import AuditLog
from cleanroom.room.auth import Users
from cleanroom.room.backends import Backend, open_backend
from cleanroom.room.config import Settings
from cleanroom.room.files import make_tree_private, private_umask
from cleanroom.room.inflight import Busy, Pins
from cleanroom.room.policy import load_policy, versions
from cleanroom.room.policy.lifecycle import ActivePolicy, PolicyVersions
from cleanroom.room.store import MetaStore
from cleanroom.room.warehouse import Warehouse, derive_key


@dataclass(frozen=True)
class RoomPaths:
    """Where a room keeps what."""

    root: Path

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def meta(self) -> Path:
        return self.root / "meta.sqlite"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"


def init_room(root: Path, policy_path: Path, *, passphrase: bytes | None = None) -> dict[str, str]:
    """A new room: keys, stores, and the collaboration policy as version 1."""
    policy, body = load_policy(policy_path)
    if root.exists() and any(root.iterdir()):
        raise UserError(
            T_(
                "%(root)s: already exists and is not empty; a room starts in a new directory",
                root=root,
            )
        )
    private_umask()
    paths = RoomPaths(root)
    for directory in (paths.root, paths.uploads, paths.tmp):
        directory.mkdir(parents=True, exist_ok=True)
    written = generate_room_keys(paths.keys, passphrase=passphrase)
    paths.keys.chmod(0o700)
    secret = load_symmetric_key(paths.keys / "room.secret", "room-secret", passphrase=passphrase)
    store = MetaStore(paths.meta)
    audit = AuditLog(store, derive_key(secret.secret, "audit"))
    with store.transaction() as db:
        versions.insert(
            db,
            1,
            sha256=_sha256(body),
            body=body,
            status=versions.ACTIVE,
            author="room-init",
            comment=f"initial policy from {policy_path.name}",
        )
        audit.append(
            db,
            actor="room-init",
            action="room.init",
            target=policy.collaboration,
            details={"policy_version": 1, "parties": sorted(policy.parties), **written.key_ids},
        )
    store.close()
    make_tree_private(root)
    return written.key_ids


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Room:
    """Everything the service and the room CLI commands act on."""

    def __init__(self, settings: Settings, *, warehouse: bool = True) -> None:
        self.settings = settings
        self.paths = RoomPaths(settings.room)
        if not self.paths.meta.exists():
            raise UserError(
                T_(
                    "%(room)s: not a room (create one with `cleanroom room init`)",
                    room=settings.room,
                )
            )
        if settings.environment == "production":
            self._check_permissions()
        private_umask()  # what the room creates from here on is the room user's alone
        passphrase = passphrase_from_env()
        self.private_key = load_room_private_key(self.paths.keys / "room.key", passphrase)
        self.key_id = public_key_id(self.private_key.public_key())
        secret = load_symmetric_key(
            self.paths.keys / "room.secret", "room-secret", passphrase=passphrase
        )
        self.rekey_secret = secret.secret
        self.store = MetaStore(self.paths.meta, busy_timeout=settings.store_busy_timeout)
        faults.arm(settings)  # only a development room's fault_pause arms anything
        self.audit = AuditLog(self.store, derive_key(secret.secret, "audit"))
        self.users = Users(self.store, self.audit)
        self.policies = PolicyVersions(self.store, self.audit)
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()
        # In flight in this process (cleanroom.room.inflight): tables under readers, and
        # the work that runs once at a time (a match, an upload of one dataset).
        self.pins = Pins()
        self.busy = Busy()
        self.warehouse: Warehouse | None = None
        if warehouse:
            self.warehouse = Warehouse(
                self.paths.warehouse,
                secret.secret,
                temp_dir=self.paths.tmp,
                threads=settings.threads,
                memory_limit=settings.memory_limit,
            )
        make_tree_private(self.paths.root)  # files an older version or another umask left

    def _check_permissions(self) -> None:
        """Fail closed: private key material readable by others means a broken install."""
        for name in ("room.key", "room.secret"):
            path = self.paths.keys / name
            if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
                raise UserError(
                    T_(
                        "%(path)s: readable by other users; run `chmod 600 %(path)s` (or set "
                        "environment: development for a throwaway room)",
                        path=path,
                    )
                )

    @property
    def wh(self) -> Warehouse:
        """The warehouse; only absent for metadata-only commands."""
        if self.warehouse is None:
            raise UserError(T_("this command opened the room without its warehouse"))
        return self.warehouse

    def drop_when_unread(self, table: str) -> None:
        """Drop a warehouse table now, or when the match or backup reading it has finished."""
        self.pins.when_unread(inflight.table(table), lambda: self.wh.drop(table))

    @property
    def backend(self) -> Backend:
        """The engine computing queries' exact aggregates (setting ``backend``), opened once."""
        with self._backend_lock:
            if self._backend is None:
                self._backend = open_backend(
                    self.settings, self.wh, self.rekey_secret, self.paths.tmp / "backend"
                )
            return self._backend

    def active_policy(self) -> ActivePolicy:
        """The approved policy in force now (:meth:`PolicyVersions.in_force`)."""
        return self.policies.in_force()

    def close(self) -> None:
        """Release the stores."""
        if self._backend is not None:
            self._backend.close()
        if self.warehouse is not None:
            self.warehouse.close()
        self.store.close()
