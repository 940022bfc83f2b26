"""Who may see a party's exact metadata: row counts, version history, spending.

Metadata is data too. Two versions' row counts differ by exactly what was
added or removed — an outside audit read one whale's exact event count (3,000)
that way — and a party's spending tells others how hard it studies them. None
of it is a noisy aggregate, so it follows the rule for exact numbers: shown
only to those who hold the data anyway or oversee the room.

- The party itself (its admins, analysts, and a reporter acting for it) sees
  its own datasets' exact rows, every version and its spending.
- Reviewers and room admins see every party's: they oversee the collaboration
  and already read the audit trail, where every upload records its rows.
- Everyone else, and a reporter acting for the whole group, sees that a
  dataset exists, whether it is live and matched, and how fresh it is —
  never a row count, a version list or another party's spending.
- Unauthenticated callers see none of it (``/metrics`` carries no counts
  derived from data).
"""

from __future__ import annotations

from typing import Any

from cleanroom.i18n import N_
from cleanroom.room.auth import Role, User
from cleanroom.room.datasets import DatasetVersion

OVERSIGHT = frozenset({Role.reviewer, Role.room_admin})
WITHHELD = N_("shown only to its own party and to reviewers")  # translated where shown


def sees_exact(user: User, party: str) -> bool:
    """Whether ``user`` may see ``party``'s exact row counts, versions and spending."""
    return user.role in OVERSIGHT or (user.party is not None and user.party == party)


def sees_every_party(user: User) -> bool:
    """Whether ``user`` may see group-wide exact figures (e.g. the collaboration's spending)."""
    return user.role in OVERSIGHT


def dataset_for(user: User, version: DatasetVersion) -> dict[str, Any]:
    """One live dataset as ``user`` may see it: in full, or that it exists and how fresh."""
    if sees_exact(user, version.party):
        return version.public()
    return {
        "party": version.party,
        "dataset": version.dataset,
        "columns": version.columns,  # the contract's columns, public in the policy anyway
        "uploaded_at": version.uploaded_at,
        "status": version.status,
        "exact": WITHHELD,
    }


def history_for(
    user: User, party: str, dataset: str, versions: list[DatasetVersion], *, in_policy: bool
) -> dict[str, Any]:
    """A dataset's history for ``user``: every version, or only its freshness."""
    live = next((v for v in versions if v.status == "live"), None)
    shown: dict[str, Any] = {
        "party": party,
        "dataset": dataset,
        "in_policy": in_policy,
        "status": (
            "live"
            if live is not None
            else "expired"  # deleted under the policy's retention; an upload brings it back
            if versions and versions[0].status == "expired"
            else "awaiting upload"
        ),
        "uploaded_at": live.uploaded_at if live is not None else None,
    }
    if sees_exact(user, party):
        shown["versions"] = [v.public() for v in versions]
    else:
        shown["exact"] = WITHHELD
    return shown


def match_inputs_for(user: User, inputs: dict[str, int]) -> dict[str, int | None]:
    """A generation's inputs ("party.dataset" -> version); others' version numbers withheld."""
    return {
        name: version if sees_exact(user, name.split(".", 1)[0]) else None
        for name, version in inputs.items()
    }
