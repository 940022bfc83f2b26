"""What a match record shows to whom: withheld-link counts by role, never more."""

from __future__ import annotations

import pytest

from cleanroom.room.auth import Role, User
from cleanroom.room.matching import Generation

WITHHELD = {
    "hubs": 1,
    "split_groups": 2,
    "split_tokens": 9,
    "links": 1_007,
    "by_party": {"filimo": 1_000, "okala": 7},
}


def user(role: Role, party: str | None = None) -> User:
    return User(1, "someone", role, party, "2026-01-01T00:00:00Z", None)


def generation(withheld: dict[str, object] | None = WITHHELD) -> Generation:
    return Generation(3, "2026-01-01T00:00:00Z", {"okala.orders": 1}, {}, "duckdb", withheld)


@pytest.mark.parametrize("role", [Role.room_admin, Role.reviewer])
def test_reviewers_and_admins_see_every_count(role: Role) -> None:
    assert generation().public(user(role))["withheld"] == WITHHELD


@pytest.mark.parametrize(
    ("role", "party", "links"),
    [
        (Role.party_admin, "filimo", 1_000),
        (Role.analyst, "okala", 7),
        (Role.analyst, "tapsi", 0),
    ],
)
def test_a_party_sees_only_its_own_links(role: Role, party: str, links: int) -> None:
    assert generation().public(user(role, party))["withheld"] == {"links": links}


def test_others_and_old_records_show_no_counts() -> None:
    assert "withheld" not in generation().public(user(Role.reporter))
    assert "withheld" not in generation().public()
    assert "withheld" not in generation({}).public(user(Role.reviewer))
    shown = generation().public()
    assert set(shown) == {"generation", "finished_at", "inputs", "suppression_applied"}
    assert shown["suppression_applied"] is False  # a flag, never a count
