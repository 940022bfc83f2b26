"""The dashboard: the collaboration, its parties and datasets with their freshness, the budget.

Freshness is what an analyst needs before trusting a number: when each
dataset was last uploaded, and whether the live match already includes that
upload (queries read the match, not the upload). Budgets come from the same
code as ``GET /api/v1/budget``, so each role sees the parties it sees there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cleanroom.errors import UserError
from cleanroom.i18n import N_
from cleanroom.room.auth import User
from cleanroom.room.disclosure import WITHHELD, sees_exact
from cleanroom.room.http.deps import EngineDep, RoomDep
from cleanroom.room.ingest import live_datasets
from cleanroom.room.matching import live_generation
from cleanroom.room.policy.models import DatasetContract
from cleanroom.room.query.engine import Engine
from cleanroom.room.spending import spending
from cleanroom.room.state import Room
from cleanroom.room.web.deps import page
from cleanroom.room.web.render import page as render
from cleanroom.room.web.session import Session

router = APIRouter()
Viewer = Annotated[Session, Depends(page("dashboard"))]


@dataclass(frozen=True)
class DatasetRow:
    """One dataset of the policy and where it stands."""

    party: str
    dataset: str
    time: str | None
    columns: int
    uploaded: bool
    exact: bool  # whether the viewer may see the version, rows and uploader below
    version: int | None
    rows: int | None
    uploaded_at: str | None
    uploaded_by: str | None
    in_match: bool
    # Per dimension, the live version's rows whose value is outside the policy's
    # domain (they fall out of every GROUP BY): exact counts of the party's own
    # data, so shown only where ``exact`` is (None otherwise).
    out_of_domain: dict[str, int] | None


def datasets(room: Room, user: User) -> dict[str, list[DatasetRow]]:
    """Every dataset the active policy names, by party, with its live version if any.

    Exact rows, version and uploader only where ``user`` may see them
    (``cleanroom.room.disclosure``); freshness and match status for all.
    """
    policy = room.active_policy().policy
    live = {(d.party, d.dataset): d for d in live_datasets(room)}
    generation = live_generation(room)
    matched = generation.inputs if generation else {}
    out: dict[str, list[DatasetRow]] = {}
    for party, spec in sorted(policy.parties.items()):
        for name, contract in sorted(spec.datasets.items()):
            version = live.get((party, name))
            exact = version is not None and sees_exact(user, party)
            out.setdefault(party, []).append(
                DatasetRow(
                    party=party,
                    dataset=name,
                    time=contract.time,
                    columns=len(contract.columns),
                    uploaded=version is not None,
                    exact=exact,
                    version=version.version if version and exact else None,
                    rows=version.rows if version and exact else None,
                    uploaded_at=version.uploaded_at if version else None,
                    uploaded_by=version.uploaded_by if version and exact else None,
                    in_match=version is not None
                    and matched.get(f"{party}.{name}") == version.version,
                    out_of_domain=outside(version.out_of_domain, dimensions(contract))
                    if version and exact
                    else None,
                )
            )
    return out


def dimensions(contract: DatasetContract) -> list[str]:
    """The contract's dimensions: its columns with a declared domain."""
    return sorted(name for name, column in contract.columns.items() if column.domain is not None)


def outside(counts: dict[str, int], names: Iterable[str]) -> dict[str, int]:
    """Every dimension with its out-of-domain rows (0 where none were, e.g. older uploads)."""
    return {name: int(counts.get(name, 0)) for name in names}


def budgets(
    room: Room, user: User, engine: Engine
) -> tuple[list[dict[str, Any]], UserError | None]:
    """The budget rows the API would return to this user, or why there are none."""
    try:
        return spending(room, user, engine.ledger), None
    except UserError as err:
        return [], err


@router.get("/")
def dashboard(request: Request, room: RoomDep, engine: EngineDep, session: Viewer) -> Response:
    """The collaboration at a glance."""
    active = room.active_policy()
    rows, budget_note = budgets(room, session.user, engine)
    return render(
        request,
        "dashboard.html",
        {
            "title": N_("Dashboard"),
            "policy": active.policy,
            "policy_version": active.version,
            "datasets": datasets(room, session.user),
            "withheld": WITHHELD,
            "generation": live_generation(room),
            "budgets": rows,
            "budget_note": budget_note,
        },
    )
