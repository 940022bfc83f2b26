"""Shared fixtures: keys made fresh per test session (never committed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cleanroom.keys import SymmetricKey, new_symmetric_key


@dataclass(frozen=True)
class Keys:
    room: X25519PrivateKey
    party: Ed25519PrivateKey
    other_party: Ed25519PrivateKey
    match: SymmetricKey


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        room=X25519PrivateKey.generate(),
        party=Ed25519PrivateKey.generate(),
        other_party=Ed25519PrivateKey.generate(),
        match=new_symmetric_key("match-key"),
    )


def leftovers(directory: Path) -> list[str]:
    """Files a failed write may have left behind (partial bundles)."""
    return sorted(
        p.name for p in directory.iterdir() if "partial" in p.name or p.suffix == ".bundle"
    )
