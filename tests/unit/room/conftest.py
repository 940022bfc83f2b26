"""Fixtures shared by the room's unit tests: a fresh metadata store and its audit log."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cleanroom.room.audit import AuditLog
from cleanroom.room.store import MetaStore

AUDIT_KEY = hashlib.sha256(b"test audit key").digest()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetaStore]:
    s = MetaStore(tmp_path / "meta.db")
    yield s
    s.close()


@pytest.fixture
def audit(store: MetaStore) -> AuditLog:
    return AuditLog(store, AUDIT_KEY)
