"""Shared fixtures: keys made fresh per test session (never committed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import settings

from cleanroom import clock
from cleanroom.contract.keys import SymmetricKey, new_symmetric_key

# Hypothesis' per-example deadline measures the machine's load, not the code: CI
# shares two cores, so examples are bounded by the suite's time instead.
settings.register_profile("cleanroom", deadline=None)
settings.load_profile("cleanroom")

# The day the suite lives on, whatever day it runs: a Wednesday after the synthetic
# group's half year (2026-01-01 .. 2026-07-01), so default windows ("the year up to
# today") cover it. Time-dependent tests derive their dates from clock.now(), never
# from the machine; processes the suite starts (the CLI, a served room) read the
# machine's clock, and CI runs the time-dependent modules again under faketime.
SUITE_TODAY = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True, scope="session")
def suite_clock() -> Iterator[clock.SetClock]:
    """The room's clock for in-process code: put at SUITE_TODAY, running at real pace."""
    with clock.use(clock.SetClock(SUITE_TODAY, ticking=True)) as set_clock:
        assert isinstance(set_clock, clock.SetClock)
        yield set_clock


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


# The end-to-end suites (a room served, parties and the CLI as processes, attacks on a
# live room) carry the `system` marker, set here by directory so a new module cannot
# forget it; `make unit` leaves them out for the inner loop, `make test` runs them all.
SYSTEM_SUITES = ("system", "security")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/system and tests/security as a system test."""
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts if item.path.is_relative_to(root) else ()
        if parts and parts[0] in SYSTEM_SUITES:
            item.add_marker(pytest.mark.system)
